//! Pages of a sweep's trials: `GetSweep` and `GetResults` answer a million-trial sweep in pieces a
//! client can receive, and no one read holds more than a page in memory.

/// Trials one page holds at most.
pub const PAGE_TRIALS: u32 = 10_000;
/// Encoded bytes one page holds, about: well under the clients' message limit (64 MiB), whatever
/// size each trial's parameters are.
pub const PAGE_BYTES: usize = 8 * 1024 * 1024;

/// The trials to read for a request of `limit` (0: a whole page): one more than the page holds,
/// to know whether another page follows.
pub fn fetch_limit(limit: u32) -> u64 {
    let limit = if limit == 0 { PAGE_TRIALS } else { limit.min(PAGE_TRIALS) };
    u64::from(limit) + 1
}

/// Cuts `items`, read with [`fetch_limit`] from `offset`, to one page: at most `fetch - 1` items and
/// about [`PAGE_BYTES`], never none while any are left. Returns them and where the next page
/// starts (0: this is the last).
pub fn cut<T: prost::Message>(mut items: Vec<T>, offset: u64, fetch: u64) -> (Vec<T>, u64) {
    let mut keep = items.len().min((fetch - 1) as usize);
    let mut bytes = 0;
    for (i, item) in items.iter().take(keep).enumerate() {
        bytes += item.encoded_len();
        if bytes > PAGE_BYTES && i > 0 {
            keep = i;
            break;
        }
    }
    let more = items.len() > keep;
    items.truncate(keep);
    let next = if more { offset + keep as u64 } else { 0 };
    (items, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sweep_proto::v1 as pb;

    fn trial(bytes: usize) -> pb::TrialStatus {
        pb::TrialStatus { params_json: "x".repeat(bytes), ..Default::default() }
    }

    #[test]
    fn a_page_stops_at_its_count_and_says_where_the_next_starts() {
        let fetch = fetch_limit(3);
        assert_eq!(fetch, 4);
        let (page, next) = cut((0..4).map(|_| trial(10)).collect(), 20, fetch);
        assert_eq!((page.len(), next), (3, 23));
        let (page, next) = cut((0..3).map(|_| trial(10)).collect(), 20, fetch);
        assert_eq!((page.len(), next), (3, 0), "nothing follows the last page");
        assert_eq!(fetch_limit(0), u64::from(PAGE_TRIALS) + 1);
        assert_eq!(fetch_limit(u32::MAX), u64::from(PAGE_TRIALS) + 1, "no request gets more than a page");
    }

    #[test]
    fn a_page_stops_at_its_size_but_never_returns_nothing() {
        let big = PAGE_BYTES / 2 + 1;
        let (page, next) = cut((0..5).map(|_| trial(big)).collect(), 0, fetch_limit(0));
        assert_eq!((page.len(), next), (1, 1));
        let (page, next) = cut(vec![trial(2 * PAGE_BYTES)], 7, fetch_limit(0));
        assert_eq!((page.len(), next), (1, 0));
    }
}
