//! How fast the engine makes games: `cargo run --release -p sweep-chess --example engine_speed`.

fn main() {
    let games = 2_000;
    let start = std::time::Instant::now();
    let played = sweep_chess::play_games(games, 1, 300);
    let elapsed = start.elapsed();
    let plies: usize = played.iter().map(|game| game.moves.len()).sum();
    println!(
        "{games} games, {plies} plies in {elapsed:.2?}: {:.0} games/s, {:.0} plies/s",
        games as f64 / elapsed.as_secs_f64(),
        plies as f64 / elapsed.as_secs_f64()
    );
}
