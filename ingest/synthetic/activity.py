"""Login activity: when each account logs in, from which of its devices and IPs.

Every account splits its logins among a few habits (say, work, home and weekend). Each habit is drawn
from one distribution: either *random* (logins on random days at hours around an active hour) or
*scheduled* (every P days at a fixed time: a trading script, a routine). Habits come from a small
discrete set of hours and spreads, as people's do. A bot farm borrows one habit for all its
synchronized members, who log in at the farm's instants for that habit: a random subset of a shared
set of instants for a random habit, the same grid points for a scheduled one. Each member's own logins
thus look like any account's; only their coincidence across the farm gives the farm away.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.synthetic.params import ExchangeParams
from ingest.synthetic.population import Population, hour_of_day
from ingest.synthetic.rings import groups_from_labels
from ingest.synthetic.world import World

DAY = 86400
PERIODS = np.array([1, 2, 3, 7])
PERIOD_P = np.array([0.4, 0.25, 0.2, 0.15])
#: Hour spreads (seconds) of random habits. Habits come from a small discrete set, so a farm's shared
#: habit is one that many benign accounts have too.
SPREADS = np.array([1.5, 2.5, 4.0]) * 3600
#: A synced farm's shared instants outnumber any member's logins this many times over, so members
#: coincide often without all sharing the same first and last instants.
MASTER_FACTOR = 3.0
#: Habits per account, and the Dirichlet concentration of how its logins split among them.
HABITS = 3
HABIT_CONCENTRATION = 2.0
PRIMARY_DEVICE_P = 0.6
HOME_IP_P = 0.5
EMPTY_UA_P = 0.03


@dataclass(frozen=True)
class Logins:
    """Login events as integer columns; ``ua`` is -1 where the user agent is missing."""

    account: np.ndarray
    ts: np.ndarray
    ip: np.ndarray
    device: np.ndarray
    ua: np.ndarray


def active_span(population: Population, params: ExchangeParams) -> tuple[np.ndarray, int]:
    """First instant of each account's activity inside the window, and the window end."""
    return np.maximum(population.created_at, params.window_start_ts), params.end_ts


def uniform_times(rng: np.random.Generator, start: np.ndarray, end: int | np.ndarray) -> np.ndarray:
    """One instant uniform in ``[start, end]`` per entry."""
    return start + np.floor(rng.random(start.size) * (end - start + 1)).astype(np.int64)


def count_draw(rng: np.random.Generator, n: int, mean: float, dispersion: float = 1.5) -> np.ndarray:
    """Activity counts ``1 + NegBin`` with the given mean (overdispersed, like real activity)."""
    extra = max(mean - 1.0, 1e-6)
    return 1 + rng.negative_binomial(dispersion, dispersion / (dispersion + extra), size=n)


def random_instants(
    rng: np.random.Generator, start: np.ndarray, end: int, hour: np.ndarray, spread: np.ndarray
) -> np.ndarray:
    """Instants on uniform days of ``[start, end]`` at a time of day around ``hour`` (seconds)."""
    out = np.empty(start.size, dtype=np.int64)
    todo = np.arange(start.size)
    for _ in range(8):
        day0 = start[todo] // DAY
        days = (end // DAY) - day0 + 1
        day = day0 + np.floor(rng.random(todo.size) * days).astype(np.int64)
        tod = np.mod(hour[todo] + rng.normal(0, spread[todo]), DAY).astype(np.int64)
        t = day * DAY + tod
        ok = (t >= start[todo]) & (t <= end)
        out[todo[ok]] = t[ok]
        todo = todo[~ok]
        if todo.size == 0:
            return out
    out[todo] = uniform_times(rng, start[todo], end)
    return out


def _scheduled(
    rng: np.random.Generator,
    who: np.ndarray,
    start: np.ndarray,
    end: int,
    n_target: np.ndarray,
    period: np.ndarray,
    origin: np.ndarray,
    phase: np.ndarray,
    jitter: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Logins of scheduled accounts ``who`` on grid points every ``period`` days at ``phase``.

    Grid days are ``origin + k * period`` (counted from the epoch), so accounts sharing a habit share
    grid points. Each account takes ``n_target`` of its grid points in its span, one at random in each
    of ``n_target`` equal strata, and logs in a little off each (its own ``jitter``).
    """
    p, ph, s = period[who], phase[who], start[who]
    day0 = s // DAY
    first = day0 + np.mod(origin[who] - day0, p)
    first = np.where(first * DAY + ph < s, first + p, first)
    n_grid = np.maximum((end - (first * DAY + ph)) // (p * DAY) + 1, 0)
    k = np.minimum(n_target[who], n_grid)
    rows = np.repeat(np.arange(who.size), k)
    j = np.arange(rows.size) - np.repeat(np.cumsum(k) - k, k)
    index = np.floor((j + rng.random(rows.size)) * n_grid[rows] / k[rows]).astype(np.int64)
    t = (first[rows] + index * p[rows]) * DAY + ph[rows] + rng.normal(0, jitter[who][rows]).astype(np.int64)
    return who[rows], np.clip(t, s[rows], end)


def _synced_random(
    rng: np.random.Generator,
    members: np.ndarray,
    start: np.ndarray,
    end: int,
    n_target: np.ndarray,
    hour: float,
    spread: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Logins of one farm's members: each a random subset of the farm's shared instants (+ < 90 s)."""
    need = n_target[members]
    size = int(MASTER_FACTOR * need.max()) + 2
    master = random_instants(rng, np.full(size, start[members].min()), end, np.full(size, hour), np.full(size, spread))
    valid = master[None, :] >= start[members][:, None]
    keys = np.where(valid, rng.random((members.size, size)), np.inf)
    order = np.argsort(keys, axis=1)
    take = np.arange(size)[None, :] < np.minimum(need, valid.sum(axis=1))[:, None]
    rows = np.broadcast_to(np.arange(members.size)[:, None], take.shape)[take]
    t = master[order[take]] + rng.integers(0, 90, size=rows.size)
    return members[rows], np.minimum(t, end)


def _habit_logins(
    rng: np.random.Generator, population: Population, n_target: np.ndarray, synced: np.ndarray, params: ExchangeParams
) -> tuple[np.ndarray, np.ndarray]:
    """``n_target[i]`` logins of each account following one habit; synced farm members share theirs."""
    n = population.n
    start, end = active_span(population, params)
    scheduled = rng.random(n) < params.scheduled_rate
    hour = (hour_of_day(rng, n) // 3600 * 3600).astype(float)
    spread = rng.choice(SPREADS, size=n)
    period = rng.choice(PERIODS, size=n, p=PERIOD_P)
    origin = np.floor(rng.random(n) * period).astype(np.int64)
    jitter = rng.lognormal(np.log(600), 0.5, n)
    # A farm borrows the habit of a random account (the same distribution) for all its synced members.
    farms = groups_from_labels(np.where(synced, population.ring, -1), population.n_rings)
    donor = rng.permutation(n)[: farms.n_groups][farms.group_of_member()]
    for latent in (scheduled, hour, spread, period, origin):
        latent[farms.members] = latent[donor]

    who = np.flatnonzero(~scheduled & ~synced)
    rows = np.repeat(who, n_target[who])
    parts_a = [rows]
    parts_t = [random_instants(rng, start[rows], end, hour[rows], spread[rows])]
    a, t = _scheduled(
        rng, np.flatnonzero(scheduled), start, end, n_target, period, origin, hour.astype(np.int64), jitter
    )
    parts_a.append(a)
    parts_t.append(t)
    for g in np.flatnonzero(farms.sizes() > 0):
        members = farms.members[farms.ptr[g] : farms.ptr[g + 1]]
        members = members[~scheduled[members]]
        if members.size:
            a, t = _synced_random(rng, members, start, end, n_target, hour[members[0]], spread[members[0]])
            parts_a.append(a)
            parts_t.append(t)
    return np.concatenate(parts_a), np.concatenate(parts_t)


def generate_logins(
    rng: np.random.Generator, population: Population, world: World, synced: np.ndarray, params: ExchangeParams
) -> Logins:
    """All login events of the window: one at signup, then the account's habits.

    Every account splits its logins among `HABITS` habits (say, work, home, weekend); a synced bot farm
    member follows its farm's shared habit for the first and its own for the others, like anyone else.

    Args:
        rng: Random generator of this stage.
        population: Accounts in creation order.
        world: Identifier slots (devices, IPs) the logins come from.
        synced: Per-account flag: bot member following its farm's shared schedule.
        params: Generation parameters.

    Returns:
        Login events (unsorted).
    """
    n = population.n
    start, _ = active_span(population, params)
    total = count_draw(rng, n, params.logins_mean)
    # Split each account's logins among its habits: a multinomial draw with Dirichlet weights.
    weights = rng.dirichlet(np.full(HABITS, HABIT_CONCENTRATION), size=n)
    remaining, counts = total.copy(), []
    for h in range(HABITS - 1):
        share = weights[:, h] / np.maximum(weights[:, h:].sum(axis=1), 1e-12)
        counts.append(rng.binomial(remaining, np.clip(share, 0.0, 1.0)))
        remaining = remaining - counts[-1]
    counts.append(remaining)
    signup_accounts = np.flatnonzero(population.created_at >= start)
    parts_a, parts_t = [signup_accounts], [population.created_at[signup_accounts]]
    for h, n_target in enumerate(counts):
        a, t = _habit_logins(rng, population, n_target, synced if h == 0 else np.zeros(n, dtype=bool), params)
        parts_a.append(a)
        parts_t.append(t)
    account = np.concatenate(parts_a)
    ts = np.concatenate(parts_t)

    signup = np.zeros(account.size, dtype=bool)
    signup[: parts_a[0].size] = True
    dev_n, ip_n = world.devices.counts()[account], world.ips.counts()[account]
    primary = signup | (rng.random(account.size) < PRIMARY_DEVICE_P)
    dev_pos = np.where(primary, 0, np.floor(rng.random(account.size) * dev_n))
    home = signup | (rng.random(account.size) < HOME_IP_P)
    ip_pos = np.where(home, 0, np.floor(rng.random(account.size) * ip_n))
    device = world.devices.ids[world.devices.ptr[account] + dev_pos.astype(np.int64)]
    ip = world.ips.ids[world.ips.ptr[account] + ip_pos.astype(np.int64)]
    ua = world.device_pool.column("ua")[device].astype(np.int16)
    ua[rng.random(account.size) < EMPTY_UA_P] = -1
    return Logins(account=account.astype(np.int64), ts=ts, ip=ip, device=device, ua=ua)
