//! A small seeded engine that makes training games: each move looks two plies ahead on material
//! alone (P1 N3 B3 R5 Q9), breaks ties at random, and with probability `epsilon` plays a uniformly
//! random legal move instead, so that games differ. Game `i` of a seed depends on nothing else.

use cozy_chess::{
    get_bishop_moves, get_king_moves, get_knight_moves, get_pawn_attacks, get_rook_moves, Board, Color, GameStatus,
    Move, Piece, Rank, Square,
};

use crate::game::{Game, GameResult};
use crate::position::{Position, Status};
use crate::rng::SplitMix64;
use crate::uci;

/// What shapes the engine's games.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineParams {
    /// A game still going after this many plies ends unfinished (`*`).
    pub max_plies: usize,
    /// The chance, per move, of a uniformly random legal move instead of the searched one.
    pub epsilon: f64,
}

/// The default [`EngineParams::epsilon`]: about one move in ten is random.
pub const DEFAULT_EPSILON: f64 = 0.1;

impl Default for EngineParams {
    fn default() -> Self {
        Self { max_plies: 300, epsilon: DEFAULT_EPSILON }
    }
}

/// `n` games of `seed` with [`DEFAULT_EPSILON`], each at most `max_plies` long.
pub fn play_games(n: usize, seed: u64, max_plies: usize) -> Vec<Game> {
    play_games_with(n, seed, &EngineParams { max_plies, epsilon: DEFAULT_EPSILON })
}

/// `n` games of `seed`: games `0..n` of [`play_game`].
pub fn play_games_with(n: usize, seed: u64, params: &EngineParams) -> Vec<Game> {
    (0..n as u64).map(|index| play_game(seed, index, params)).collect()
}

/// Game `index` of `seed`, from the start position. It ends at checkmate, stalemate, the
/// fifty-move rule, threefold repetition, insufficient material (kings and at most one minor
/// piece), or after `max_plies` plies.
pub fn play_game(seed: u64, index: u64, params: &EngineParams) -> Game {
    let mut rng = SplitMix64::stream(seed, index);
    let mut position = Position::start();
    // Hashes of the positions since the last capture or pawn move, for threefold repetition.
    let mut since_irreversible = vec![position.board.hash()];
    let mut moves = Vec::new();
    let mut buffers = Buffers::default();
    let result = loop {
        match position.status() {
            Status::Checkmate if position.board.side_to_move() == Color::White => break GameResult::BlackWins,
            Status::Checkmate => break GameResult::WhiteWins,
            Status::Stalemate => break GameResult::Draw,
            Status::Ongoing => {}
        }
        let hash = position.board.hash();
        let repetitions = since_irreversible.iter().filter(|&&seen| seen == hash).count();
        if position.halfmove_clock() >= 100 || repetitions >= 3 || position.is_insufficient_material() {
            break GameResult::Draw;
        }
        if moves.len() >= params.max_plies {
            break GameResult::Unknown;
        }
        let mv = choose(&position.board, &mut rng, params.epsilon, &mut buffers);
        moves.push(uci::format(&position.board, mv));
        position.board.play_unchecked(mv);
        if position.halfmove_clock() == 0 {
            since_irreversible.clear();
        }
        since_irreversible.push(position.board.hash());
    };
    let tags = [
        ("Event", "sweep-chess engine".to_owned()),
        ("Round", (index + 1).to_string()),
        ("White", "sweep-chess 2-ply".to_owned()),
        ("Black", "sweep-chess 2-ply".to_owned()),
        ("Result", result.as_str().to_owned()),
        ("Seed", seed.to_string()),
    ];
    Game { tags: tags.into_iter().map(|(name, value)| (name.to_owned(), value)).collect(), moves, result }
}

/// Move lists reused from ply to ply.
#[derive(Default)]
struct Buffers {
    legal: Vec<Move>,
    best: Vec<Move>,
}

/// A score for checkmating: more than any material balance.
const MATE: i32 = 1_000;

/// The move to play: random with probability `epsilon`, else one of the best by the 2-ply search,
/// chosen at random among equals.
fn choose(board: &Board, rng: &mut SplitMix64, epsilon: f64, buffers: &mut Buffers) -> Move {
    let Buffers { legal, best } = buffers;
    legal.clear();
    board.generate_moves(|moves| {
        legal.extend(moves);
        false
    });
    // Sorting makes the choice independent of the order the move generator happens to use.
    legal.sort_unstable_by_key(move_key);
    if rng.next_f64() < epsilon {
        return legal[rng.below(legal.len())];
    }
    let us = board.side_to_move();
    let mut best_score = i32::MIN;
    best.clear();
    for &mv in legal.iter() {
        let mut after = board.clone();
        after.play_unchecked(mv);
        let score = score_after(&after, us);
        if score > best_score {
            best_score = score;
            best.clear();
        }
        if score == best_score {
            best.push(mv);
        }
    }
    best[rng.below(best.len())]
}

/// The material balance for `us` after the opponent's best reply in `after` (the opponent to
/// move): [`MATE`] if the opponent is checkmated, 0 if the game is drawn there (stalemate, or the
/// fifty-move rule, which ends the engine's games).
///
/// The evaluation is material alone, so a reply changes the balance only by what it captures and
/// promotes: the best reply is the one that gains most. Rather than generate every reply, this
/// looks only at the replies that can gain (captures, promotions, en passant) and asks the board
/// whether each is legal, most valuable first.
fn score_after(after: &Board, us: Color) -> i32 {
    match after.status() {
        GameStatus::Won => MATE,
        GameStatus::Drawn => 0,
        GameStatus::Ongoing => material(after, us) - material(after, !us) - best_gain(after, us),
    }
}

/// The most material the side to move in `board` can win from `victim` with one legal move.
fn best_gain(board: &Board, victim: Color) -> i32 {
    let them = !victim;
    let their_pawns = board.colored_pieces(them, Piece::Pawn);
    let promotion_rank = Rank::Eighth.relative_to(them);
    let queen_for_pawn = value(Piece::Queen) - value(Piece::Pawn);
    let captured_on =
        |square: Square| board.piece_on(square).filter(|_| board.color_on(square) == Some(victim)).map_or(0, value);
    let mut best = 0;

    // Promotions, by a push or a capture, always to a queen.
    for from in their_pawns & Rank::Seventh.relative_to(them).bitboard() {
        let push = Square::new(from.file(), promotion_rank).bitboard() & !board.occupied();
        let captures = get_pawn_attacks(from, them) & board.colors(victim);
        for to in push | captures {
            if board.is_legal(Move { from, to, promotion: Some(Piece::Queen) }) {
                best = best.max(captured_on(to) + queen_for_pawn);
            }
        }
    }

    // Captures, most valuable victim first: the first legal one is the best.
    let occupied = board.occupied();
    let diagonal = board.pieces(Piece::Bishop) | board.pieces(Piece::Queen);
    let straight = board.pieces(Piece::Rook) | board.pieces(Piece::Queen);
    'victims: for kind in [Piece::Queen, Piece::Rook, Piece::Bishop, Piece::Knight, Piece::Pawn] {
        if value(kind) <= best {
            break;
        }
        for to in board.colored_pieces(victim, kind) {
            let attackers = board.colors(them)
                & ((get_knight_moves(to) & board.pieces(Piece::Knight))
                    | (get_bishop_moves(to, occupied) & diagonal)
                    | (get_rook_moves(to, occupied) & straight)
                    | (get_pawn_attacks(to, victim) & board.pieces(Piece::Pawn))
                    | (get_king_moves(to) & board.pieces(Piece::King)));
            for from in attackers {
                // Pawn captures onto the last rank were weighed with the promotions above.
                if their_pawns.has(from) && to.rank() == promotion_rank {
                    continue;
                }
                if board.is_legal(Move { from, to, promotion: None }) {
                    best = best.max(value(kind));
                    break 'victims;
                }
            }
        }
    }

    // En passant takes a pawn from an empty square.
    if best == 0 {
        if let Some(file) = board.en_passant() {
            let to = Square::new(file, Rank::Sixth.relative_to(them));
            let takers = get_pawn_attacks(to, victim) & their_pawns;
            if takers.into_iter().any(|from| board.is_legal(Move { from, to, promotion: None })) {
                best = value(Piece::Pawn);
            }
        }
    }
    best
}

fn material(board: &Board, color: Color) -> i32 {
    let count = |piece| board.colored_pieces(color, piece).len() as i32;
    count(Piece::Pawn)
        + value(Piece::Knight) * count(Piece::Knight)
        + value(Piece::Bishop) * count(Piece::Bishop)
        + value(Piece::Rook) * count(Piece::Rook)
        + value(Piece::Queen) * count(Piece::Queen)
}

/// A key that orders moves by from-square, to-square (a1, b1, …, h8) and promotion piece.
fn move_key(mv: &Move) -> u16 {
    let promotion = mv.promotion.map_or(0, |piece| piece as u16 + 1);
    (mv.from as u16) << 9 | (mv.to as u16) << 3 | promotion
}

fn value(piece: Piece) -> i32 {
    match piece {
        Piece::Pawn => 1,
        Piece::Knight | Piece::Bishop => 3,
        Piece::Rook => 5,
        Piece::Queen => 9,
        Piece::King => 0,
    }
}

#[cfg(test)]
mod tests;
