//! sweep-chess against python-chess, the reference implementation, run as a separate program
//! (it is GPL: a test oracle, never linked). The project's `.venv` gets it from scripts/setup.sh;
//! without it these tests fail rather than pass unchecked.
//!
//! - Games python-chess plays and writes (with comments, NAGs, nested variations and set-up
//!   positions) read back to the same UCI moves.
//! - In positions from those games and hand-picked hard ones, every candidate move (the whole
//!   UCI vocabulary, random square pairs, castling aliases, garbage) gets the same verdict from
//!   `is_legal` as from python-chess, and `legal_moves` gives the same set.
//! - PGN written by `write_pgn` reads in python-chess to the same moves, with the same SAN.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use sweep_chess::{
    all_uci_moves, is_legal, legal_moves, play, play_games, read_pgn_file, uci_to_san, write_pgn, Game, GameResult,
    Position,
};

const SEED: u64 = 20_240_601;
const GAMES: usize = 50;

/// The project's Python, with python-chess importable.
fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh, which makes the project's .venv and installs python-chess (`chess`)",
        python.display()
    );
    python
}

/// Runs the oracle script with `args` and returns its standard output.
fn oracle(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/python_chess_oracle.py");
    let output = Command::new(python()).arg(&script).args(args).output().expect("the project's python runs");
    assert!(
        output.status.success(),
        "python-chess oracle {args:?} failed (is python-chess installed? run scripts/setup.sh): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the oracle prints UTF-8")
}

/// Games python-chess played: its PGN file read by `read_pgn_file`, and its own account of each
/// game's result and UCI moves.
struct OracleGames {
    read: Vec<Game>,
    expected: Vec<(String, Vec<String>)>,
    stats: String,
    _dir: tempfile::TempDir,
}

fn oracle_games() -> OracleGames {
    let dir = tempfile::tempdir().unwrap();
    let pgn = dir.path().join("python-chess.pgn");
    let stdout = oracle(&["games", &SEED.to_string(), &GAMES.to_string(), pgn.to_str().unwrap()]);
    let mut expected = Vec::new();
    let mut stats = String::new();
    for line in stdout.lines() {
        let mut words = line.split(' ');
        match words.next() {
            Some("GAME") => {
                let result = words.next().unwrap().to_owned();
                expected.push((result, words.map(str::to_owned).collect()));
            }
            Some("STATS") => stats = line.to_owned(),
            _ => panic!("unexpected oracle line {line:?}"),
        }
    }
    let read = read_pgn_file(&pgn).unwrap_or_else(|error| panic!("python-chess's PGN does not read: {error}"));
    OracleGames { read, expected, stats, _dir: dir }
}

/// A count from the oracle's `STATS key=value ...` line.
fn stat(stats: &str, key: &str) -> usize {
    let prefix = format!("{key}=");
    stats.split(' ').find_map(|word| word.strip_prefix(&prefix)).and_then(|value| value.parse().ok()).unwrap_or(0)
}

#[test]
fn python_chess_games_read_back_move_by_move() {
    let games = oracle_games();
    assert_eq!(games.read.len(), GAMES);
    assert_eq!(games.expected.len(), GAMES);
    for (index, (game, (result, moves))) in games.read.iter().zip(&games.expected).enumerate() {
        assert_eq!(&game.moves, moves, "game {}", index + 1);
        assert_eq!(game.result.as_str(), result, "game {}", index + 1);
        assert_eq!(game.tag("Event"), Some(format!("random game \"{index}\" \\ oracle").as_str()));
    }
    // The games hold what the reader must get right, or this test would prove little.
    for (key, least) in [
        ("castles", 10),
        ("long_castles", 3),
        ("en_passant", 5),
        ("promotions", 10),
        ("under_promotions", 5),
        ("variations", 20),
        ("setups", 5),
    ] {
        assert!(stat(&games.stats, key) >= least, "too few {key} in python-chess's games: {}", games.stats);
    }
}

/// Positions where legality is easy to get wrong.
const HARD_POSITIONS: &[&str] = &[
    // Castling: through an attacked square, out of check, into check, past an attacked b1.
    "4kr2/8/8/8/8/8/8/R3K2R w KQ - 0 1",
    "4r1k1/8/8/8/8/8/8/R3K2R w KQ - 0 1",
    "3k2r1/8/8/8/8/8/8/R3K2R w KQ - 0 1",
    "1r1k4/8/8/8/8/8/8/R3K2R w KQ - 0 1",
    "r3k2r/8/8/8/8/8/8/R3K2R b KQkq - 0 1",
    "r3k2r/8/8/8/8/8/8/R3K2R w - - 0 1",
    // En passant: exposing the king along the rank, capturing the checking pawn.
    "8/8/8/K2pP2r/8/8/8/7k w - d6 0 2",
    "8/8/8/2k5/3Pp3/8/8/4K3 b - d3 0 1",
    // Double check, a pinned bishop, promotions with capture for both sides.
    "4k3/8/8/8/8/3n4/8/4K2r w - - 0 1",
    "4k3/4r3/8/8/8/8/4B3/4K3 w - - 0 1",
    "1n2k3/P7/8/8/8/8/6p1/4K2R w K - 0 1",
    "1n2k3/P7/8/8/8/8/6p1/4K2R b K - 0 1",
    // No legal move: stalemate and checkmate.
    "7k/8/6QK/8/8/8/8/8 b - - 0 1",
    "7k/6Q1/6K1/8/8/8/8/8 b - - 0 1",
];

/// Text that is no move at all, in many shapes.
fn garbage() -> Vec<String> {
    let mut garbage: Vec<String> = [
        "",
        "e",
        "e2",
        "e2e",
        "e2e4 ",
        " e2e4",
        "E2E4",
        "e2e4\n",
        "e2e4qq",
        "e7e8Q",
        "e7e8k",
        "e7e8p",
        "a1a1",
        "0000",
        "--",
        "Q@e4",
        "P@e4",
        "O-O",
        "O-O-O",
        "e1g1 ",
        "Nf3",
        "\u{1b}[31m",
        "\u{1b}]0;x\u{7}",
        "é2é4",
        "e2é4",
        "\u{ff45}2\u{ff45}4",
        "e2\u{0}4",
        "e9e4",
        "i2i4",
    ]
    .map(str::to_owned)
    .to_vec();
    garbage.push("e2e4".repeat(50));
    garbage
}

/// A small generator for random candidates (the test's own; the oracle sees what it makes).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Every candidate judged in `position`: the whole UCI vocabulary (all legal moves, moves into
/// check, through check, of the wrong colour, promotions without or with the wrong piece),
/// random square pairs, and garbage.
fn candidates(vocabulary: &[String], garbage: &[String], rng: &mut Lcg) -> Vec<String> {
    let square = |index: u64| format!("{}{}", (b'a' + (index % 8) as u8) as char, index / 8 + 1);
    let mut candidates = vocabulary.to_vec();
    candidates.extend(garbage.iter().cloned());
    for _ in 0..64 {
        let mut text = square(rng.below(64)) + &square(rng.below(64));
        if rng.below(4) == 0 {
            text.push(['q', 'r', 'b', 'n', 'k', 'p'][rng.below(6) as usize]);
        }
        candidates.push(text);
    }
    candidates
}

fn hex(text: &str) -> String {
    text.bytes().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn legality_agrees_with_python_chess_on_every_candidate() {
    let games = oracle_games();
    // Positions from python-chess's games: every 25th ply, and the first three positions of each
    // game where castling, an en-passant capture or a promotion is played or could be.
    let mut positions: Vec<Position> = HARD_POSITIONS.iter().map(|fen| Position::from_fen(fen).unwrap()).collect();
    for game in &games.read {
        let mut position = game.start_position().unwrap();
        let mut specials = 0;
        for (ply, mv) in game.moves.iter().enumerate() {
            let special = mv.len() == 5
                || uci_to_san(&position, mv).is_ok_and(|san| san.starts_with("O-O"))
                || legal_moves(&position).iter().any(|legal| is_en_passant(&position, legal));
            if ply % 25 == 0 || (special && specials < 3) {
                specials += usize::from(special);
                positions.push(position.clone());
            }
            position = play(&position, mv).unwrap();
        }
    }
    assert!(positions.len() > 250, "only {} positions", positions.len());

    let vocabulary = all_uci_moves();
    let garbage = garbage();
    let mut rng = Lcg(SEED);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("candidates.txt");
    let mut lines = String::new();
    let mut judged = Vec::new();
    for position in &positions {
        let candidates = candidates(&vocabulary, &garbage, &mut rng);
        lines.push_str(&position.fen());
        lines.push('\t');
        lines.push_str(&candidates.iter().map(|candidate| hex(candidate)).collect::<Vec<_>>().join(","));
        lines.push('\n');
        judged.push(candidates);
    }
    std::fs::write(&input, lines).unwrap();
    let stdout = oracle(&["judge", input.to_str().unwrap()]);
    let mut replies = stdout.lines();

    let (mut legal_count, mut illegal_count, mut aliases) = (0, 0, 0);
    for (position, candidates) in positions.iter().zip(&judged) {
        let legal_line = replies.next().expect("a LEGAL line per position");
        let verdict_line = replies.next().expect("a VERDICTS line per position");
        let theirs: BTreeSet<&str> = legal_line.strip_prefix("LEGAL").unwrap().split_whitespace().collect();
        let ours = legal_moves(position);
        assert_eq!(
            ours.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            theirs,
            "legal moves in {}",
            position.fen()
        );
        let verdicts = verdict_line.strip_prefix("VERDICTS ").unwrap_or("").as_bytes();
        assert_eq!(verdicts.len(), candidates.len(), "one verdict per candidate in {}", position.fen());
        for (candidate, &verdict) in candidates.iter().zip(verdicts) {
            let ours = is_legal(position, candidate);
            // python-chess also takes the king moving onto its own rook as castling; UCI for
            // standard chess spells castling only as the king's two-square step, and so does
            // this crate, so each legal move has one spelling in the vocabulary.
            let expected = match verdict {
                b'1' => true,
                b'0' => false,
                b'a' => {
                    aliases += 1;
                    false
                }
                other => panic!("unexpected verdict {:?}", other as char),
            };
            assert_eq!(ours, expected, "is_legal({candidate:?}) in {}", position.fen());
            if ours {
                legal_count += 1;
            } else {
                illegal_count += 1;
            }
        }
    }
    assert!(replies.next().is_none(), "the oracle printed more lines than positions");
    assert!(legal_count > 2_000 && illegal_count > 100_000 && aliases > 0, "{legal_count} {illegal_count} {aliases}");
}

/// Whether the legal move `uci` captures en passant: a pawn changing file onto an empty square.
fn is_en_passant(position: &Position, uci: &str) -> bool {
    let pawn = uci_to_san(position, uci).is_ok_and(|san| san.starts_with(|first: char| first.is_ascii_lowercase()));
    pawn && uci[..1] != uci[2..3] && piece_on(position, &uci[2..4]).is_none()
}

/// The FEN letter of the piece on `square` (like `e4`), if any.
fn piece_on(position: &Position, square: &str) -> Option<char> {
    let (file, rank) = (square.as_bytes()[0] - b'a', square.as_bytes()[1] - b'1');
    let fen = position.fen();
    let row = fen.split(' ').next()?.split('/').nth(7 - usize::from(rank))?;
    let mut column = 0;
    for letter in row.chars() {
        match letter.to_digit(10) {
            Some(empty) => column += empty as u8,
            None if column == file => return Some(letter),
            None => column += 1,
        }
        if column > file {
            return None;
        }
    }
    None
}

#[test]
fn our_pgn_reads_the_same_in_python_chess() {
    let games = play_games(30, SEED, 250);
    let dir = tempfile::tempdir().unwrap();
    let pgn = dir.path().join("sweep-chess.pgn");
    std::fs::write(&pgn, write_pgn(&games).unwrap()).unwrap();
    let stdout = oracle(&["read", pgn.to_str().unwrap()]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(!lines.iter().any(|line| line.starts_with("ERRORS")), "python-chess reports errors: {stdout}");
    assert_eq!(lines.len(), 2 * games.len());
    for (index, (game, pair)) in games.iter().zip(lines.chunks(2)).enumerate() {
        let mut words = pair[0].split(' ').skip(1);
        let result = words.next().unwrap();
        assert_eq!(result, game.result.as_str(), "game {}", index + 1);
        assert_eq!(words.collect::<Vec<_>>(), game.moves, "game {}", index + 1);
        // Our SAN, move by move, is python-chess's SAN.
        let mut position = Position::start();
        let mut ours = Vec::new();
        for mv in &game.moves {
            ours.push(uci_to_san(&position, mv).unwrap());
            position = play(&position, mv).unwrap();
        }
        let theirs: Vec<&str> = pair[1].split(' ').skip(1).collect();
        assert_eq!(ours, theirs, "SAN of game {}", index + 1);
    }
    assert!(games.iter().any(|game| game.result != GameResult::Unknown));
}
