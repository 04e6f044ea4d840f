"""People's success/failure labels of episodes, read from a studio export (`protege studio export`),
and how far the people agree. Both the human judge (`judges.py`) and the success detector's
training labels (`detector.py`) read them; episodes are matched by the studio's episode id.
"""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from protege.core.errors import UserError
from protege.data.episodes import replay_id

STUDIO_EXPORT_KIND = "protege.feedback.export"

episode_key = replay_id  # the studio's episode id: people's labels are found by it


@dataclass(frozen=True)
class HumanItem:
    """People's labels of one studio episode: {person: success?}."""
    key: str
    labels: dict

    @property
    def majority(self) -> bool | None:
        """True / False by majority; None on a tie."""
        yes = sum(self.labels.values())
        no = len(self.labels) - yes
        return None if yes == no else yes > no


def human_labels(export: Path) -> dict[str, HumanItem]:
    """{studio episode id: HumanItem} of every episode with at least one success/failure label."""
    from protege.data.manifest import read_kind
    from protege.data.text import read_jsonl
    export = Path(export)
    read_kind(export, STUDIO_EXPORT_KIND, "studio export folder", "protege studio export --out", f"--export {export}")
    items = {}
    for number, row in read_jsonl(export / "episodes.jsonl", "episodes of a studio export"):
        labels = row.get("labels") if isinstance(row, dict) else None
        if not isinstance(labels, dict) or not isinstance(row.get("id"), str) \
                or any(v not in ("success", "failure") for v in labels.values()):
            raise UserError(f"{export / 'episodes.jsonl'} line {number}: not an episode row with labels "
                            f"{{person: success|failure}}")
        if labels:
            items[row["id"]] = HumanItem(row["id"], {p: v == "success" for p, v in sorted(labels.items())})
    if not items:
        raise UserError(f"--export {export}: the judge set is empty (no one marked success or failure; "
                        f"people do so on the studio's watch page)")
    return items


def agreement(items: list[HumanItem]) -> dict:
    """k per item, majority ties, and chance-corrected agreement: Cohen's kappa over the items two
    people labelled when k = 2 is the most common, else Fleiss' kappa over the items with that k."""
    from protege.eval.agreement import cohen_kappa, fleiss_kappa
    ks = Counter(len(i.labels) for i in items)
    k = max(ks, key=lambda n: (ks[n], n))
    same_k = [i for i in items if len(i.labels) == k]
    kappa, statistic = None, "none (one judge per item)"
    if k == 2:
        firsts = [list(i.labels.values()) for i in same_k]
        kappa, statistic = cohen_kappa([a for a, _ in firsts], [b for _, b in firsts]), "cohen_kappa"
    elif k > 2:
        kappa = fleiss_kappa([[sum(i.labels.values()), k - sum(i.labels.values())] for i in same_k])
        statistic = "fleiss_kappa"
    return {"items": len(items), "judges_per_item": dict(sorted(ks.items())), "k": k,
            "agreement": statistic, "kappa": kappa,
            "unanimous": sum(len(set(i.labels.values())) == 1 for i in items),
            "ties": sum(i.majority is None for i in items)}
