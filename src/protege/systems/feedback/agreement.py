"""Agreement between the studio's annotators, for the admin page (statistics in eval/agreement.py).

Success labels: a person's label of an episode is their latest live `success` or `failure` mark.
With exactly two labelling annotators, Cohen's kappa over the episodes both labelled; with more,
Fleiss' kappa over the episodes labelled by the most common number (>= 2) of annotators (Fleiss
needs the same number of raters per item). Marks: the fraction of one annotator's progress/regress
marks that another annotator of the same episode matched (same kind, within +-2 steps), pooled
over every ordered pair of annotators who marked the same episode.
"""

from collections import Counter, defaultdict
from itertools import permutations

from sqlalchemy import select

from protege.eval.agreement import cohen_kappa, fleiss_kappa, timing_agreement
from protege.systems.feedback.db import Mark, User

TOLERANCE = 2
LABELS = ("success", "failure")


def success_agreement(labels: dict[str, dict[str, str]]) -> dict:
    """labels: episode -> {annotator: "success"|"failure"}."""
    raters = {u for per in labels.values() for u in per}
    if len(raters) == 2:
        a, b = sorted(raters)
        both = [per for per in labels.values() if a in per and b in per]
        return {"method": "cohen", "kappa": cohen_kappa([p[a] for p in both], [p[b] for p in both]),
                "episodes": len(both), "annotators": 2}
    counts = Counter(len(per) for per in labels.values() if len(per) >= 2)
    if not counts:
        return {"method": None, "kappa": None, "episodes": 0, "annotators": len(raters)}
    n = max(counts, key=lambda m: (counts[m], m))
    table = [[sum(v == label for v in per.values()) for label in LABELS]
             for per in labels.values() if len(per) == n]
    return {"method": "fleiss", "kappa": fleiss_kappa(table), "episodes": len(table), "annotators": n}


def marks_agreement(marks: dict[str, dict[str, list[tuple[int, str]]]]) -> dict:
    """marks: episode -> {annotator: [(step, kind), ...]} of progress/regress marks."""
    matched = total = 0
    for per in marks.values():
        for a, b in permutations(per, 2):
            m, t = timing_agreement(per[a], per[b], TOLERANCE)
            matched, total = matched + m, total + t
    return {"tolerance": TOLERANCE, "matched": matched, "total": total,
            "agreement": matched / total if total else None}


def agreement_report(db) -> dict:
    rows = db.execute(select(Mark.episode_id, User.name, Mark.step, Mark.kind)
                      .join(User, User.id == Mark.user_id).where(Mark.deleted.is_(False))
                      .order_by(Mark.updated_at, Mark.uuid)).all()
    labels: dict[str, dict[str, str]] = defaultdict(dict)
    timing: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for episode, user, step, kind in rows:
        if kind in LABELS:
            labels[episode][user] = kind  # rows come oldest first: the latest label wins
        else:
            timing[episode][user].append((step, kind))
    return {"success": success_agreement(labels), "marks": marks_agreement(timing)}
