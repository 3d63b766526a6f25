//! The engine: determinism, how games end, and what the 2-ply search prefers.

use super::*;
use crate::{is_legal, position_after};

#[test]
fn the_same_seed_plays_the_same_games_and_other_seeds_differ() {
    let games = play_games(40, 42, 200);
    assert_eq!(games, play_games(40, 42, 200));
    // Game i depends only on (seed, i), not on how many games are played.
    assert_eq!(games[..10], play_games(10, 42, 200)[..]);
    assert_eq!(games[17], play_game(42, 17, &EngineParams { max_plies: 200, epsilon: DEFAULT_EPSILON }));
    let other = play_games(40, 43, 200);
    let same = games.iter().zip(&other).filter(|(a, b)| a.moves == b.moves).count();
    assert!(same < 2, "{same} of 40 games are the same under seeds 42 and 43");
    let distinct: std::collections::HashSet<_> = games.iter().map(|game| &game.moves).collect();
    assert!(distinct.len() > 35, "only {} distinct games of 40", distinct.len());
}

/// The opening of a seed's games, pinned: it changes if the engine, the generator or the move
/// generator behave differently, which would change every data set made with this crate.
#[test]
fn games_are_stable_across_machines_and_versions() {
    let openings: Vec<String> = play_games(5, 2024, 60).iter().map(|game| game.moves[..8].join(" ")).collect();
    assert_eq!(
        openings,
        [
            "g2g4 e7e6 g1f3 a7a5 e2e3 f7f6 e1e2 d7d5",
            "a2a3 b8c6 h2h4 g7g6 e2e4 f7f6 f2f3 c6d4",
            "d2d3 b7b5 e2e4 f7f6 g1e2 a7a6 c2c3 d7d6",
            "e2e4 g7g6 f1e2 f8h6 c2c3 a7a5 a2a3 h6g7",
            "h2h3 b8a6 b1a3 a6b8 h3h4 b7b6 g2g4 c8a6",
        ]
    );
}

#[test]
fn games_end_for_a_reason_the_result_states() {
    let params = EngineParams { max_plies: 400, epsilon: DEFAULT_EPSILON };
    let games = play_games_with(300, 7, &params);
    let mut decisive = 0;
    for game in &games {
        let end = position_after(None, &game.moves).unwrap();
        let mate = end.status() == Status::Checkmate;
        match game.result {
            GameResult::WhiteWins | GameResult::BlackWins => {
                assert!(mate);
                let loser = if game.result == GameResult::WhiteWins { crate::Side::Black } else { crate::Side::White };
                assert_eq!(end.side_to_move(), loser);
                decisive += 1;
            }
            GameResult::Draw => assert!(!mate && game.moves.len() < params.max_plies),
            GameResult::Unknown => assert_eq!(game.moves.len(), params.max_plies),
        }
        assert_eq!(game.tag("Result"), Some(game.result.as_str()));
    }
    assert!(decisive > 30, "only {decisive} of 300 games were won");
}

#[test]
fn without_randomness_the_search_takes_material_and_mates() {
    let greedy = 0.0;
    let mut rng = SplitMix64::stream(1, 1);
    let mut buffers = Buffers::default();
    let choose_in = |fen: &str, rng: &mut SplitMix64, buffers: &mut Buffers| {
        let position = Position::from_fen(fen).unwrap();
        let mv = choose(&position.board, rng, greedy, buffers);
        uci::format(&position.board, mv)
    };
    // A free queen is taken.
    assert_eq!(choose_in("4k3/8/8/3q4/8/8/3R4/4K3 w - - 0 1", &mut rng, &mut buffers), "d2d5");
    // A defended queen is still worth a rook: Rxd5 exd5 nets four.
    assert_eq!(choose_in("4k3/8/4p3/3q4/8/8/3R4/3QK3 w - - 0 1", &mut rng, &mut buffers), "d2d5");
    // A queen attacked by a pawn takes it, the one move that saves the queen and wins material.
    assert_eq!(choose_in("4k3/8/8/2p5/3Q4/8/8/4K3 w - - 0 1", &mut rng, &mut buffers), "d4c5");
    // Mate in one beats winning a rook.
    assert_eq!(choose_in("6k1/5ppp/8/8/8/8/r7/1Q2K3 w - - 0 1", &mut rng, &mut buffers), "b1b8");
    // The best promotion is to a queen.
    assert_eq!(choose_in("8/P7/8/8/8/8/k7/4K3 w - - 0 1", &mut rng, &mut buffers), "a7a8q");
}

#[test]
fn epsilon_one_plays_only_random_legal_moves() {
    let params = EngineParams { max_plies: 50, epsilon: 1.0 };
    for game in play_games_with(10, 3, &params) {
        let mut position = Position::start();
        for mv in &game.moves {
            assert!(is_legal(&position, mv));
            position = crate::play(&position, mv).unwrap();
        }
    }
}

#[test]
fn a_few_hundred_games_take_well_under_seconds() {
    let start = std::time::Instant::now();
    let games = play_games(300, 99, 200);
    let elapsed = start.elapsed();
    let plies: usize = games.iter().map(|game| game.moves.len()).sum();
    eprintln!("300 games, {plies} plies in {elapsed:?}");
    assert!(plies > 300 * 40);
}
