"""`protege sts rank`: agents ranked by their judged continuations, with intervals (eval/ranking.py).

The outcome matrix [agents, scenarios] comes from a continuations folder, judged by the world's
verifier (each continuation's `success`) or by a judgements file (people or the learned detector;
k judges per item decided by majority, `formats.read_judgements`). Items a judgements file leaves
out are dropped for every agent (the comparison stays paired); their count is reported.

Several continuations folders of one scenario set rank together (agents run at different times).
`--against` names a second evaluation of the same agents (continuations folders, e.g. the
full online evaluation: scenarios cut at step 0 of held-out seeds, or the same folder judged by
another judgements file): Kendall's tau between the two rankings' success rates, with a bootstrap
interval (scenarios resampled within each evaluation; paired when both use the same scenarios).
"""

from pathlib import Path

import numpy as np

from protege.core.errors import UserError
from protege.eval.ranking import (
    RESAMPLES,
    bootstrap_indices,
    kendall_tau_interval,
    paired_bootstrap,
    pairwise,
    ranks,
)
from protege.eval.stats import wilson_interval
from protege.systems.sts.formats import read_continuations, read_judgements


def merged_continuations(folders) -> tuple[list[str], list[dict]]:
    """(agents, rows) of one or more continuations folders of the same scenario set (agents added
    by later runs need no rerun of the earlier ones); an agent in two folders is refused."""
    folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
    if not folders:
        raise UserError("name at least one continuations folder (`protege sts run`)")
    agents, rows, sha = [], [], None
    for folder in folders:
        header, found = read_continuations(folder)
        if sha is not None and header.get("scenarios_sha256") != sha:
            raise UserError(f"{folder}: continues another scenario set than {folders[0]}; rank "
                            f"continuations of one set together")
        sha = header.get("scenarios_sha256")
        new = list(header.get("agents") or dict.fromkeys(r["agent"] for r in found))
        twice = [a for a in new if a in agents]
        if twice:
            raise UserError(f"{folder}: agent {twice[0]!r} is also in an earlier folder; give each agent once")
        agents += new
        rows += found
    return agents, rows


def outcome_matrix(continuations, judgements: Path | None = None) -> tuple[list[str], list[str], np.ndarray, int]:
    """(agents, scenario ids, outcomes [A, S] bool, items dropped for lack of a judgement) of one
    or more continuations folders of one scenario set."""
    agents, rows = merged_continuations(continuations)
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    judged = read_judgements(judgements) if judgements else {(r["agent"], r["scenario"]): bool(r["success"])
                                                             for r in rows}
    if judgements and not any((a, s) in judged for a in agents for s in scenarios):
        raise UserError(f"--judgements {judgements}: judges none of the continuations in {continuations} "
                        f"(agents {agents[:3]}...)")
    keep = [s for s in scenarios if all((a, s) in judged for a in agents)]
    if not keep:
        raise UserError(f"--judgements {judgements}: no scenario is judged for every agent; judge all "
                        f"agents' continuations of at least one scenario")
    outcomes = np.asarray([[judged[(a, s)] for s in keep] for a in agents], bool)
    return agents, keep, outcomes, len(scenarios) - len(keep)


def rank_agents(continuations, judgements: Path | None = None, against: Path | None = None,
                against_judgements: Path | None = None, png: Path | None = None, seed: int = 0,
                resamples: int = RESAMPLES, alpha: float = 0.05) -> dict:
    """The ranking table, pairwise comparisons and (with `against`) the agreement; draws `png`."""
    agents, scenarios, outcomes, dropped = outcome_matrix(continuations, judgements)
    boot = paired_bootstrap(outcomes, resamples, seed)
    table = []
    for i in np.argsort(boot["rank"], kind="stable"):
        wins, n = int(outcomes[i].sum()), outcomes.shape[1]
        lo, hi = wilson_interval(wins, n)
        table.append({"agent": agents[i], "scenarios": n, "success": wins / n, "success_lo": lo,
                      "success_hi": hi, "rank": int(boot["rank"][i]), "rank_lo": int(boot["rank_lo"][i]),
                      "rank_hi": int(boot["rank_hi"][i])})
    pairs = pairwise(outcomes, agents, alpha)
    index = {a: i for i, a in enumerate(agents)}
    for p in pairs:
        p["win_probability"] = float(boot["win"][index[p["a"]], index[p["b"]]])
    result = {"table": table, "pairs": pairs, "dropped": dropped, "judge": str(judgements or "verifier"),
              "agents": agents, "boot": boot, "scenarios": scenarios, "outcomes": outcomes}
    if against or against_judgements is not None:
        result["agreement"] = agreement(result, against or continuations, against_judgements, seed, resamples)
    if png is not None:
        names = [Path(c).name for c in ([continuations] if isinstance(continuations, (str, Path)) else continuations)]
        draw_ranking(table, png, f"{' + '.join(names)} ({result['judge']})")
    return result


def agreement(first: dict, against, against_judgements: Path | None, seed: int, resamples: int) -> dict:
    """Kendall's tau between `first`'s success rates and those of `against`, over common agents."""
    agents, scenarios, outcomes, _ = outcome_matrix(against, against_judgements)
    common = [a for a in first["agents"] if a in agents]
    if len(common) < 2:
        raise UserError(f"--against {against}: shares {len(common)} agent(s) with the ranked "
                        f"continuations; Kendall's tau needs at least 2 common agents")
    x = first["outcomes"][[first["agents"].index(a) for a in common]]
    y = outcomes[[agents.index(a) for a in common]]
    rng = np.random.default_rng(seed + 1)
    x_idx = bootstrap_indices(x.shape[1], resamples, rng)
    y_idx = x_idx if first["scenarios"] == scenarios else bootstrap_indices(y.shape[1], resamples, rng)
    x_rep, y_rep = x[:, x_idx].mean(axis=2).T, y[:, y_idx].mean(axis=2).T
    tau, lo, hi = kendall_tau_interval(x.mean(axis=1), y.mean(axis=1), x_rep, y_rep)
    folders = [against] if isinstance(against, (str, Path)) else against
    return {"against": " + ".join(map(str, folders)), "against_judge": str(against_judgements or "verifier"),
            "agents": len(common), "tau": tau, "tau_lo": lo, "tau_hi": hi,
            "paired": first["scenarios"] == scenarios,
            "against_success": {a: float(y[i].mean()) for i, a in enumerate(common)},
            "against_rank": dict(zip(common, (int(r) for r in ranks(y.mean(axis=1)[None])[0]), strict=True))}


def parse_counts(text: str) -> list[int]:
    try:
        return [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        raise UserError(f"--scenario-counts {text!r}: give comma-separated whole numbers, e.g. 20,40,80") from None


def tau_by_scenario_count(result: dict, counts: list[int], draws: int = 200, seed: int = 0) -> list[dict]:
    """How many scenarios the suite needs: Kendall's tau against `--against`'s success rates when
    only n of the scenarios are used (n in `counts`; `draws` random subsets of n scenarios drawn
    without replacement), as mean and 2.5 / 97.5 percentiles over the subsets."""
    from protege.eval.ranking import kendall_tau
    a = result["agreement"]
    common = list(a["against_success"])
    x = result["outcomes"][[result["agents"].index(name) for name in common]]
    y = np.asarray([a["against_success"][name] for name in common])
    rng = np.random.default_rng(seed)
    rows = []
    for n in counts:
        if not 1 <= n <= x.shape[1]:
            raise UserError(f"--scenario-counts: {n} is not in [1, {x.shape[1]}] (the scenarios ranked)")
        taus = np.asarray([kendall_tau(x[:, rng.choice(x.shape[1], n, replace=False)].mean(axis=1), y)
                           for _ in range(draws)])
        taus = taus[~np.isnan(taus)]
        rows.append({"scenarios": n, "subsets": draws, "tau mean": f"{taus.mean():.3f}",
                     "tau 2.5%-97.5%": f"[{np.quantile(taus, 0.025):.3f}, {np.quantile(taus, 0.975):.3f}]",
                     "P(tau >= 0.9)": f"{(taus >= 0.9).mean():.2f}"})
    return rows


def draw_ranking(table: list[dict], png: Path, title: str) -> None:
    """Two panels: each agent's rank with its bootstrap interval, and its success with Wilson's."""
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from protege.core.atomic import atomic_path
    names = [r["agent"] for r in table][::-1]
    y = np.arange(len(names))
    rows = table[::-1]
    fig, (ax_rank, ax_rate) = plt.subplots(1, 2, figsize=(10, 0.45 * len(names) + 1.5), sharey=True)
    # intervals as segments: a percentile interval need not contain the point estimate's rank
    ax_rank.hlines(y, [r["rank_lo"] for r in rows], [r["rank_hi"] for r in rows], color="tab:blue")
    ax_rank.plot([r["rank"] for r in rows], y, "o", color="tab:blue")
    ax_rank.set_xlabel("rank (95% paired bootstrap interval)")
    ax_rank.invert_xaxis()
    ax_rank.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax_rate.hlines(y, [r["success_lo"] for r in rows], [r["success_hi"] for r in rows], color="tab:green")
    ax_rate.plot([r["success"] for r in rows], y, "s", color="tab:green")
    ax_rate.set_xlabel("success (95% Wilson)")
    ax_rate.set_xlim(-0.02, 1.02)
    ax_rank.set_yticks(y, names)
    fig.suptitle(title)
    fig.tight_layout()
    png = Path(png)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def format_tables(result: dict) -> tuple[list[dict], list[dict], list[str]]:
    """(ranking rows, pair rows, warnings) as printed by the CLI."""
    ranking = [{"agent": r["agent"], "scenarios": r["scenarios"],
                "success (95% Wilson)": f"{r['success']:.3f} [{r['success_lo']:.3f}, {r['success_hi']:.3f}]",
                "rank (95% bootstrap)": f"{r['rank']} [{r['rank_lo']}, {r['rank_hi']}]"} for r in result["table"]]
    pairs = [{"a": p["a"], "b": p["b"], "P(a beats b)": f"{p['win_probability']:.3f}",
              "a only / b only": f"{p['only_a']} / {p['only_b']}",
              "McNemar p": f"{p['p']:.3g} ({'exact' if p['exact'] else 'chi2'})",
              "scenarios needed": str(int(p["needed"])) if np.isfinite(p["needed"]) else "-"}
             for p in result["pairs"]]
    n = result["table"][0]["scenarios"]
    warnings = [f"underpowered: {p['a']} vs {p['b']} differ on {p['only_a'] + p['only_b']} of {n} scenarios "
                f"(McNemar p = {p['p']:.3g}); about {int(p['needed'])} scenarios are needed for 80% power"
                for p in result["pairs"] if p["underpowered"] and np.isfinite(p["needed"])]
    if result["dropped"]:
        warnings.append(f"{result['dropped']} scenario(s) dropped: not judged for every agent")
    return ranking, pairs, warnings
