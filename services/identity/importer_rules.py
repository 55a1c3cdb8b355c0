"""Who is the same person, and which ballots they get: the campaign's dedupe rule.

The 2023 plan says one person answers one ballot, the highest-priority form (provincial
delegate > district delegate > staff); the 2021 notice says one ballot per group the person
belongs to. Both are data (Campaign.dedupe_rule, Campaign.form_priority), applied here to the
candidate registrations importer.py built from the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from contracts.campaign import Campaign, DedupeRule
from services.identity.importer_read import ImportProblem


@dataclass(frozen=True)
class Candidate:
    """One (person, form) a row asks for; a row flagged for two groups yields two."""

    row: int
    sheet: str | None
    email: str  # already normalised: stripped, lowercase
    email_column: str
    form_code: str
    unit_code: str | None
    full_name: str
    phone: str | None
    national_id: str | None
    roles: tuple[str, ...]
    position: str | None = None


@dataclass(frozen=True)
class Merge:
    """A person found more than once whose extra registrations were dropped, and why."""

    email: str
    kept_form: str
    dropped_forms: list[str]
    rows: list[int]
    reason_vi: str
    reason_en: str
    sheets: list[str | None]  # sheets[i] is the worksheet of rows[i] (None for a CSV)


def _where(c: Candidate) -> str:
    return f"{c.sheet}!{c.row}" if c.sheet else str(c.row)


def _priority(campaign: Campaign) -> dict[str, int]:
    order = list(campaign.form_priority)
    order += [f.code for f in campaign.forms if f.code not in order]
    return {code: i for i, code in enumerate(order)}


def _people(candidates: list[Candidate]) -> list[list[Candidate]]:
    """Group by same e-mail or same national id (transitively), in first-seen order."""
    parent = list(range(len(candidates)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, c in enumerate(candidates):
        for key in (("email", c.email), ("nid", c.national_id or "")):
            if not key[1]:
                continue
            j = first.setdefault(key, i)
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[Candidate]] = {}
    for i, c in enumerate(candidates):
        groups.setdefault(find(i), []).append(c)
    return [groups[k] for k in sorted(groups)]


def _combined(kept: Candidate, group: list[Candidate]) -> Candidate:
    """The kept registration, carrying every role the person has and any contact detail given."""
    roles: list[str] = []
    for c in group:
        roles += [r for r in c.roles if r not in roles]
    phone = kept.phone or next((c.phone for c in group if c.phone), None)
    nid = kept.national_id or next((c.national_id for c in group if c.national_id), None)
    position = kept.position or next((c.position for c in group if c.position), None)
    return replace(kept, roles=tuple(roles), phone=phone, national_id=nid, position=position)


def resolve(
    candidates: list[Candidate], campaign: Campaign
) -> tuple[list[Candidate], list[Merge], list[ImportProblem]]:
    """Kept registrations, the merges made, and the problems (duplicate rows, clashing ids)."""
    problems: list[ImportProblem] = []
    seen: dict[tuple[str, str], Candidate] = {}
    nid_of: dict[str, Candidate] = {}
    unique: list[Candidate] = []
    for c in candidates:
        earlier = seen.get((c.email, c.form_code))
        if earlier is not None:
            if earlier.row != c.row or earlier.sheet != c.sheet:
                problems.append(
                    ImportProblem(
                        c.row,
                        c.email_column,
                        "duplicate_row",
                        f"Trùng dòng {_where(earlier)}: cùng email {c.email} và phiếu "
                        f"{c.form_code}.",
                        f"Duplicate of row {_where(earlier)}: same e-mail {c.email} and form "
                        f"{c.form_code}.",
                        c.sheet,
                    )
                )
            continue
        other = nid_of.get(c.email)
        if other is not None and c.national_id and other.national_id != c.national_id:
            problems.append(
                ImportProblem(
                    c.row,
                    c.email_column,
                    "conflicting_national_id",
                    f"Email {c.email} ở dòng {_where(other)} có số CCCD khác "
                    f"({other.national_id} ≠ {c.national_id}).",
                    f"E-mail {c.email} has a different national id at row {_where(other)} "
                    f"({other.national_id} != {c.national_id}).",
                    c.sheet,
                )
            )
        if c.national_id:
            nid_of.setdefault(c.email, c)
        seen[(c.email, c.form_code)] = c
        unique.append(c)

    rank = _priority(campaign)
    kept: list[Candidate] = []
    merges: list[Merge] = []
    for group in _people(unique):
        if len(group) == 1:
            kept.append(group[0])
            continue
        ordered = sorted(group, key=lambda c: rank.get(c.form_code, len(rank)))
        if campaign.dedupe_rule == DedupeRule.single_by_priority:
            chosen = [ordered[0]]
        else:  # one_per_group: the first candidate of each distinct form
            chosen = []
            for c in ordered:
                if all(k.form_code != c.form_code for k in chosen):
                    chosen.append(c)
        for c in chosen:
            same_form = [g for g in group if g.form_code == c.form_code]
            kept.append(_combined(c, group if len(chosen) == 1 else same_form))
        dropped = [g for g in group if all(g is not k for k in chosen)]
        if not dropped:
            continue
        rows = sorted({(g.sheet or "", g.row) for g in group})
        linked = "email/CCCD" if len({g.email for g in group}) > 1 else "email"
        for c in chosen:
            lost = [g for g in dropped if len(chosen) == 1 or g.form_code == c.form_code]
            if not lost:
                continue
            dropped_forms = sorted({g.form_code for g in lost}, key=lambda f: rank.get(f, 99))
            if campaign.dedupe_rule == DedupeRule.single_by_priority:
                order = " > ".join(sorted(rank, key=rank.__getitem__))
                vi = (
                    f"Một người chỉ trả lời 01 phiếu theo thứ tự ưu tiên ({order}): giữ phiếu "
                    f"{c.form_code}, bỏ phiếu {', '.join(dropped_forms)} "
                    f"(cùng người theo {linked})."
                )
                en = (
                    f"One ballot per person, by priority ({order}): kept form {c.form_code}, "
                    f"dropped {', '.join(dropped_forms)} (same person by {linked})."
                )
            else:
                vi = (
                    f"Cùng một người (theo {linked}) được liệt kê nhiều lần cho phiếu "
                    f"{c.form_code}: chỉ giữ một đăng ký."
                )
                en = (
                    f"The same person (by {linked}) is listed more than once for form "
                    f"{c.form_code}: one registration kept."
                )
            merges.append(
                Merge(
                    email=c.email,
                    kept_form=c.form_code,
                    dropped_forms=dropped_forms,
                    rows=[r for _, r in rows],
                    reason_vi=vi,
                    reason_en=en,
                    sheets=[s or None for s, _ in rows],
                )
            )
    return kept, merges, problems
