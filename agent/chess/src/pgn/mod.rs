//! PGN, the text format of chess games: a reader that turns games into UCI move lists (main line
//! only, every move checked against the rules, every input size bounded) and a writer that turns
//! them back into SAN movetext with the seven-tag roster.

mod lexer;
mod read;
mod write;

pub use read::{read_pgn, read_pgn_file, read_pgn_with_limits, PgnLimits, Reader};
pub use write::write_pgn;
