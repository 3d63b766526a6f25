"""The transformer of `seq2seq` (decoder-only form) in PyTorch, op for op: learned token and
position embeddings, pre-LayerNorm blocks of 4 linears around F.scaled_dot_product_attention with a
causal and padding mask, a GELU feed-forward, a final LayerNorm and an untied head; trained with
cross-entropy and torch.optim.AdamW. Prints one JSON line of training throughput in tokens/s, as
agent/workloads/examples/transformer_throughput.rs does for the tch build (bench/seq2seq/compare.py
runs both)."""

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.heads = heads
        self.norm_self = nn.LayerNorm(d)
        self.query, self.key, self.value, self.out = (nn.Linear(d, d) for _ in range(4))
        self.norm_ff = nn.LayerNorm(d)
        self.up, self.down = nn.Linear(d, ff), nn.Linear(ff, d)

    def split(self, x):
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x, allowed):
        h = self.norm_self(x)
        q, k, v = self.split(self.query(h)), self.split(self.key(h)), self.split(self.value(h))
        mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        b, _, t, _ = mixed.shape
        x = x + self.out(mixed.transpose(1, 2).reshape(b, t, -1))
        return x + self.down(F.gelu(self.up(self.norm_ff(x))))


class Transformer(nn.Module):
    def __init__(self, vocab, d, heads, layers, ff, max_len):
        super().__init__()
        self.tokens = nn.Embedding(vocab, d)
        self.positions = nn.Embedding(max_len, d)
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(d, heads, ff) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):
        ok = ids != 0
        positions = (ok.long().cumsum(1) - 1).clamp_min(0)
        t = ids.shape[1]
        q = torch.arange(t).unsqueeze(1)
        k = torch.arange(t).unsqueeze(0)
        allowed = (ok[:, None, None, :] & (k <= q)) | (k == q)
        x = self.tokens(ids) + self.positions(positions)
        for block in self.blocks:
            x = block(x, allowed)
        return self.head(self.norm(x))


def main():
    p = argparse.ArgumentParser()
    for name, default in [("d-model", 128), ("layers", 2), ("heads", 4), ("seq", 32), ("batch", 32),
                          ("vocab", 1973), ("steps", 20), ("threads", 0)]:
        p.add_argument(f"--{name}", type=int, default=default)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = Transformer(a.vocab, a.d_model, a.heads, a.layers, 4 * a.d_model, a.seq)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
    inputs = torch.randint(5, a.vocab, (a.batch, a.seq))
    labels = torch.randint(5, a.vocab, (a.batch, a.seq))

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(net(inputs).view(-1, a.vocab), labels.view(-1), ignore_index=0)
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        last = step()
    seconds = time.perf_counter() - start
    parameters = sum(p.numel() for p in net.parameters())
    print(json.dumps({"impl": "pytorch", "tokens_per_second": round(a.batch * a.seq * a.steps / seconds, 1),
                      "seconds": round(seconds, 3), "steps": a.steps, "parameters": parameters,
                      "threads": torch.get_num_threads(), "loss": round(last, 4), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
