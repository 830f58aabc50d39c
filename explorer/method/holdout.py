"""How a probe's buffer is split into training and held-out tokens: whole sentences held out (so the held-out
accuracy is not inflated by a sentence's own tokens), or a stratified split when there are no sentence ids; each
part balanced between HR and non-HR tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Split:
    """Indices of one fit's buffer (after balancing) into train and held-out parts, stratified by label."""

    train: Tensor
    heldout: Tensor


def balanced_indices(y: Tensor, g: torch.Generator) -> Tensor:
    pos = torch.nonzero(y == 1).flatten()
    neg = torch.nonzero(y == 0).flatten()
    n = min(len(pos), len(neg))
    pos = pos[torch.randperm(len(pos), generator=g)[:n]]
    neg = neg[torch.randperm(len(neg), generator=g)[:n]]
    return torch.sort(torch.cat([pos, neg])).values


def group_split(y: Tensor, groups: Tensor, holdout: float, g: torch.Generator, site: str, *,
                 balance: bool) -> tuple[Tensor, Split]:
    """Hold out whole sentences: going through the groups (sentence ids) in a seeded random order, a group goes to
    the held-out part while that part still lacks its share ``holdout`` of the tokens of a class the group has
    (so both parts get both classes even when most sentences hold one variety only), else to training. Each part is
    then balanced between HR and non-HR tokens on its own. Returns the kept token indices (train part first) and the
    split as positions into them."""
    ids, inverse = torch.unique(groups, return_inverse=True)
    per_group = torch.zeros(len(ids), 2, dtype=torch.long)
    per_group.index_put_((inverse, y.long()), torch.ones(len(y), dtype=torch.long), accumulate=True)
    target = holdout * per_group.sum(0).double()
    held_count = torch.zeros(2, dtype=torch.double)
    held_groups = torch.zeros(len(ids), dtype=torch.bool)
    for gi in torch.randperm(len(ids), generator=g).tolist():
        has = per_group[gi] > 0
        if bool((has & (held_count < target)).any()):
            held_groups[gi] = True
            held_count += per_group[gi].double()
    # each part needs a group holding each class: move one across when the random pass left a part without one
    for c in (0, 1):
        has_c = per_group[:, c] > 0
        for part, other in ((~held_groups, held_groups), (held_groups, ~held_groups)):
            if not bool((has_c & part).any()):
                donors = torch.nonzero(has_c & other).flatten()
                if len(donors) > 1:
                    held_groups[donors[0]] = ~held_groups[donors[0]]
    held_mask = held_groups[inverse]
    parts = []
    for mask, name in ((~held_mask, "training"), (held_mask, "held-out")):
        idx = torch.nonzero(mask).flatten()
        counts = [int((y[idx] == c).sum()) for c in (0, 1)]
        if min(counts) < 1:
            raise ValueError(
                f"probe at {site!r}: the {name} sentences hold {counts[1]} HR and {counts[0]} non-HR token(s) "
                f"({len(ids)} sentence(s) in the buffer); both parts need tokens of both classes. Use a larger probe "
                "buffer (--probe-tokens) or check the variety labels")
        if balance:
            idx = idx[balanced_indices(y[idx], g)]
        parts.append(idx)
    keep = torch.cat(parts)
    n_tr = len(parts[0])
    return keep, Split(train=torch.arange(n_tr), heldout=torch.arange(n_tr, len(keep)))


def stratified_split(y: Tensor, holdout: float, g: torch.Generator, site: str) -> Split:
    train, held = [], []
    for c in (0, 1):
        idx = torch.nonzero(y == c).flatten()
        name = "HR" if c else "non-HR"
        if len(idx) < 2:
            raise ValueError(
                f"probe at {site!r}: the buffer has {len(idx)} {name} token(s); it needs at least 2 of each class "
                "(check the variety labels and the buffer size)"
            )
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_ho = min(max(1, round(holdout * len(idx))), len(idx) - 1)
        held.append(idx[:n_ho])
        train.append(idx[n_ho:])
    return Split(train=torch.sort(torch.cat(train)).values, heldout=torch.sort(torch.cat(held)).values)
