"""python-chess as a test oracle for sweep-chess (tests/python_chess.rs runs this file).

python-chess is GPL: it is run as a separate program by the tests, never linked or shipped.

    python_chess_oracle.py games SEED COUNT OUT.pgn   play random games, write them as PGN,
                                                     print each game's result and UCI moves
    python_chess_oracle.py judge IN.txt              judge candidate moves in positions
    python_chess_oracle.py read IN.pgn               read a PGN, print each game's moves as UCI and SAN
"""

import random
import sys

import chess
import chess.pgn

# Start positions besides the standard one: castling early, Black to move with an en-passant
# capture available, and pawns about to promote on both sides.
STARTS = [
    "r3k2r/pppppppp/8/8/8/8/PPPPPPPP/R3K2R w KQkq - 0 1",
    "rnbqkbnr/ppp1pppp/8/8/3pP3/8/PPPP1PPP/RNBQKBNR b KQkq e3 0 3",
    "r3k2r/1P4P1/8/8/8/8/1p4p1/R3K2R w KQkq - 0 30",
]


def is_special(board, move):
    return board.is_castling(move) or board.is_en_passant(move) or move.promotion is not None


def play(rng, index):
    """One random game; castling, en passant and promotions are taken more often than chance."""
    fen = STARTS[index % len(STARTS)] if index % 4 == 3 else None
    board = chess.Board(fen) if fen else chess.Board()
    game = chess.pgn.Game()
    if fen:
        game.setup(board)
    game.headers["Event"] = f'random game "{index}" \\ oracle'
    game.headers["Round"] = str(index + 1)
    annotate = index % 3 == 0
    node = game
    for _ in range(rng.randint(40, 260)):
        moves = sorted(board.legal_moves, key=lambda move: move.uci())
        if not moves:
            break
        special = [move for move in moves if is_special(board, move)]
        move = rng.choice(special) if special and rng.random() < 0.7 else rng.choice(moves)
        parent = node
        node = parent.add_main_variation(move)
        if annotate and rng.random() < 0.15:
            node.comment = "a comment; with (parens) and 1-0 inside"
        if annotate and rng.random() < 0.1:
            node.nags.add(rng.choice([chess.pgn.NAG_GOOD_MOVE, chess.pgn.NAG_DUBIOUS_MOVE, 14]))
        if annotate and len(moves) > 1 and rng.random() < 0.1:
            other = rng.choice([candidate for candidate in moves if candidate != move])
            side = parent.add_variation(other)
            side.comment = "a side line"
            replies = sorted(side.board().legal_moves, key=lambda reply: reply.uci())
            if len(replies) > 1:
                side.add_main_variation(replies[0])
                side.add_variation(replies[-1]).comment = "nested"
        board.push(move)
    outcome = board.outcome()
    game.headers["Result"] = outcome.result() if outcome else "*"
    return game


def games(seed, count, path):
    rng = random.Random(seed)
    stats = dict(castles=0, long_castles=0, en_passant=0, promotions=0, under_promotions=0, variations=0, setups=0)
    with open(path, "w", encoding="utf-8") as out:
        for index in range(count):
            game = play(rng, index)
            print(game, file=out, end="\n\n")
            board = game.board()
            stats["setups"] += "FEN" in game.headers
            for move in game.mainline_moves():
                stats["castles"] += board.is_castling(move)
                stats["long_castles"] += board.is_queenside_castling(move)
                stats["en_passant"] += board.is_en_passant(move)
                stats["promotions"] += move.promotion is not None
                stats["under_promotions"] += move.promotion not in (None, chess.QUEEN)
                board.push(move)
            stats["variations"] += sum(len(node.variations) - 1 for node in game.mainline() if node.variations)
            stats["variations"] += len(game.variations) - 1 if game.variations else 0
            print("GAME", game.headers["Result"], *(move.uci() for move in game.mainline_moves()))
    print("STATS", *(f"{key}={value}" for key, value in stats.items()))


def judge(path):
    """Each input line is `FEN<TAB>hex,hex,...`, candidates hex-encoded as UTF-8. For each line,
    print the legal moves, then one verdict per candidate: `1` legal, `0` illegal, and `a` for a
    move python-chess accepts only as the king taking its own rook (its castling alias)."""
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            fen, hexes = line.rstrip("\n").split("\t")
            board = chess.Board(fen)
            print("LEGAL", *sorted(move.uci() for move in board.legal_moves))
            verdicts = []
            for text in (bytes.fromhex(item).decode("utf-8") for item in hexes.split(",")):
                try:
                    move = chess.Move.from_uci(text)
                except ValueError:
                    verdicts.append("0")
                    continue
                if move not in board.legal_moves:
                    verdicts.append("0")
                elif board.color_at(move.to_square) == board.turn:
                    verdicts.append("a")
                else:
                    verdicts.append("1")
            print("VERDICTS", "".join(verdicts))


def read(path):
    with open(path, encoding="utf-8") as pgn:
        while (game := chess.pgn.read_game(pgn)) is not None:
            if game.errors:
                print("ERRORS", *game.errors)
            board = game.board()
            sans = []
            for move in game.mainline_moves():
                sans.append(board.san(move))
                board.push(move)
            print("GAME", game.headers.get("Result", "?"), *(move.uci() for move in game.mainline_moves()))
            print("SAN", *sans)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "games":
        games(int(args[0]), int(args[1]), args[2])
    elif command == "judge":
        judge(args[0])
    elif command == "read":
        read(args[0])
    else:
        sys.exit(f"unknown command {command!r}")
