//! The `sequences` format: a folder with `train.txt` and `test.txt`, one example per line, tokens
//! separated by spaces. A line is either `source<TAB>target` (a pair: translate, harmonise) or a
//! single sequence, which the workload cuts into a source and its continuation. The vocabulary is
//! built from the training split: the special tokens, then every token by descending count (ties
//! in byte order), cut at the vocabulary size the trial asks for; the rest read as `<unk>`.

use super::DataError;
use crate::models::transformer::tokens;
use std::collections::HashMap;
use std::path::Path;

/// The largest file read, so a wrong path cannot fill the memory.
pub const MAX_FILE_BYTES: u64 = 4 << 30;
/// The longest line; longer examples are cut to the model's length when batched anyway.
pub const MAX_LINE_BYTES: usize = 1 << 20;
pub const MAX_TOKEN_BYTES: usize = 256;
pub const MAX_EXAMPLES: usize = 50_000_000;

/// One example as token ids: the source, then the target from `split` on. A single sequence has no
/// split of its own; the workload draws one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub tokens: Vec<u32>,
    pub split: Option<u32>,
}

/// Token strings by id; ids below [`tokens::SPECIALS`]'s length are the special tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    words: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    /// The special tokens followed by `words`, which must not repeat or name a special token.
    pub fn new(words: impl IntoIterator<Item = String>) -> Vocab {
        let all: Vec<String> = tokens::SPECIALS.iter().map(|s| s.to_string()).chain(words).collect();
        let ids = all.iter().enumerate().map(|(i, w)| (w.clone(), i as u32)).collect();
        Vocab { words: all, ids }
    }

    /// The special tokens, then `words` by descending count, ties in byte order, cut so that the
    /// vocabulary has at most `max_vocab` entries (the special tokens included). Every reader of
    /// text builds its vocabulary here, from its training split only, so no test word leaks in.
    pub fn build<'a>(words: impl IntoIterator<Item = &'a str>, max_vocab: usize) -> Vocab {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for w in words {
            *counts.entry(w).or_default() += 1;
        }
        let mut words: Vec<(&str, u64)> = counts.into_iter().collect();
        words.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let room = max_vocab.saturating_sub(tokens::SPECIALS.len());
        Vocab::new(words.into_iter().take(room).map(|(w, _)| w.to_string()))
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The id of `word`, `<unk>` when it has none.
    pub fn id(&self, word: &str) -> u32 {
        self.ids.get(word).copied().unwrap_or(tokens::UNK as u32)
    }

    pub fn word(&self, id: i64) -> &str {
        usize::try_from(id).ok().and_then(|i| self.words.get(i)).map_or(tokens::SPECIALS[tokens::UNK as usize], |w| w)
    }
}

/// Both splits as ids of one vocabulary.
#[derive(Debug)]
pub struct Corpus {
    pub vocab: Vocab,
    pub train: Vec<Sequence>,
    pub test: Vec<Sequence>,
}

/// One line as read: its tokens, and where the target starts for a pair.
struct Line<'a> {
    words: Vec<&'a str>,
    split: Option<usize>,
}

/// Reads `root/train.txt` and `root/test.txt`, with a vocabulary of at most `max_vocab` entries
/// (special tokens included) from the training split.
pub fn load(root: &Path, max_vocab: usize) -> Result<Corpus, DataError> {
    let train_text = read(&root.join("train.txt"))?;
    let test_text = read(&root.join("test.txt"))?;
    let train = parse(&root.join("train.txt"), &train_text)?;
    let test = parse(&root.join("test.txt"), &test_text)?;
    let vocab = Vocab::build(train.iter().flat_map(|l| l.words.iter().copied()), max_vocab);
    let ids = |lines: &[Line<'_>]| -> Vec<Sequence> {
        lines
            .iter()
            .map(|l| Sequence {
                tokens: l.words.iter().map(|w| vocab.id(w)).collect(),
                split: l.split.map(|s| s as u32),
            })
            .collect()
    };
    let (train, test) = (ids(&train), ids(&test));
    Ok(Corpus { vocab, train, test })
}

fn read(path: &Path) -> Result<String, DataError> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, "read", e))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(DataError::invalid(path, format!("{} bytes; at most {MAX_FILE_BYTES} are read", meta.len())));
    }
    std::fs::read_to_string(path).map_err(|e| DataError::io(path, "read as UTF-8 text", e))
}

/// The examples of one file; blank lines are skipped. Every line must be of one kind: pairs, or
/// single sequences of two tokens or more (one to read and one to predict).
fn parse<'a>(path: &Path, text: &'a str) -> Result<Vec<Line<'a>>, DataError> {
    let mut lines = Vec::new();
    let mut pairs = None;
    for (n, raw) in text.lines().enumerate() {
        let at = |m: String| DataError::invalid(path, format!("line {}: {m}", n + 1));
        if raw.trim().is_empty() {
            continue;
        }
        if raw.len() > MAX_LINE_BYTES {
            return Err(at(format!("{} bytes; a line may have at most {MAX_LINE_BYTES}", raw.len())));
        }
        if lines.len() == MAX_EXAMPLES {
            return Err(at(format!("more than {MAX_EXAMPLES} examples")));
        }
        let (source, target) = match raw.split_once('\t') {
            Some((s, t)) => (s, Some(t)),
            None => (raw, None),
        };
        match (pairs, target.is_some()) {
            (None, is_pair) => pairs = Some(is_pair),
            (Some(a), b) if a != b => {
                return Err(at(format!(
                    "a {}, after lines that were {}; one file holds pairs or single sequences, not both",
                    if b { "source<TAB>target pair" } else { "single sequence" },
                    if a { "pairs" } else { "single sequences" }
                )))
            }
            _ => {}
        }
        let mut words: Vec<&str> = source.split_whitespace().collect();
        let split = words.len();
        if let Some(t) = target {
            if t.contains('\t') {
                return Err(at("more than one tab; a pair is source<TAB>target".into()));
            }
            words.extend(t.split_whitespace());
        }
        if let Some(w) = words.iter().find(|w| w.len() > MAX_TOKEN_BYTES) {
            return Err(at(format!("a token of {} bytes; at most {MAX_TOKEN_BYTES}", w.len())));
        }
        if let Some(w) = words.iter().find(|w| tokens::SPECIALS.contains(w)) {
            return Err(at(format!("the token {w} is reserved")));
        }
        match target {
            Some(_) if split == 0 || split == words.len() => {
                return Err(at("a pair needs a source and a target, each of one token or more".into()))
            }
            None if words.len() < 2 => return Err(at("a single sequence needs two tokens or more".into())),
            _ => {}
        }
        lines.push(Line { words, split: target.map(|_| split) });
    }
    if lines.is_empty() {
        return Err(DataError::invalid(path, "no examples"));
    }
    Ok(lines)
}

/// Writes `root/train.txt` and `root/test.txt` from lines of tokens, a tab between source and
/// target where a pair has one.
pub fn write(root: &Path, train: &[String], test: &[String]) -> Result<(), DataError> {
    std::fs::create_dir_all(root).map_err(|e| DataError::io(root, "create", e))?;
    for (name, lines) in [("train.txt", train), ("test.txt", test)] {
        let path = root.join(name);
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(&path, text).map_err(|e| DataError::io(&path, "write", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(train: &str, test: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.txt"), train).unwrap();
        std::fs::write(dir.path().join("test.txt"), test).unwrap();
        dir
    }

    #[test]
    fn pairs_read_back_with_a_vocabulary_by_count() {
        let dir = folder("a b\tc c\n\nb a\tc d\n", "a z\tc\n");
        let corpus = load(dir.path(), 100).unwrap();
        let v = &corpus.vocab;
        // c three times, then a and b twice (byte order), then d once.
        assert_eq!((v.word(5), v.word(6), v.word(7), v.word(8)), ("c", "a", "b", "d"));
        assert_eq!(v.len(), 9);
        assert_eq!(corpus.train[0], Sequence { tokens: vec![6, 7, 5, 5], split: Some(2) });
        assert_eq!(corpus.train[1], Sequence { tokens: vec![7, 6, 5, 8], split: Some(2) });
        // z is not in the training split.
        assert_eq!(corpus.test[0], Sequence { tokens: vec![6, tokens::UNK as u32, 5], split: Some(2) });
        let small = load(dir.path(), 7).unwrap();
        assert_eq!(small.vocab.len(), 7);
        assert_eq!(small.train[1].tokens, vec![tokens::UNK as u32, 6, 5, tokens::UNK as u32]);
    }

    #[test]
    fn single_sequences_have_no_split() {
        let dir = folder("e2e4 e7e5 g1f3\n", "d2d4 d7d5\n");
        let corpus = load(dir.path(), 100).unwrap();
        assert_eq!(corpus.train[0].split, None);
        assert_eq!(corpus.test[0].tokens.len(), 2);
    }

    #[test]
    fn bad_files_are_refused_naming_file_and_line() {
        let long_token = "x".repeat(MAX_TOKEN_BYTES + 1);
        let long_line = "a ".repeat(MAX_LINE_BYTES / 2 + 1);
        for (train, want) in [
            ("a b\tc\nd e\n", "train.txt: line 2: a single sequence, after lines that were pairs"),
            ("a\tb\tc\n", "train.txt: line 1: more than one tab"),
            ("\tb\n", "train.txt: line 1: a pair needs a source and a target"),
            ("a\n", "train.txt: line 1: a single sequence needs two tokens"),
            (&format!("a {long_token}\n") as &str, "train.txt: line 1: a token of 257 bytes"),
            (&long_line as &str, "train.txt: line 1: 1048578 bytes"),
            ("a <pad> b\n", "train.txt: line 1: the token <pad> is reserved"),
            ("\n\n", "train.txt: no examples"),
        ] {
            let dir = folder(train, "a b\n");
            let err = load(dir.path(), 100).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.txt"), "a b\n").unwrap();
        let err = load(dir.path(), 100).unwrap_err().to_string();
        assert!(err.contains("test.txt: cannot read"), "{err}");
    }

    #[test]
    fn written_files_read_back() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &["a b\tc".into(), "b\tc a".into()], &["a\tc".into()]).unwrap();
        let corpus = load(dir.path(), 100).unwrap();
        assert_eq!(corpus.train.len(), 2);
        assert_eq!(corpus.test[0].split, Some(1));
    }
}
