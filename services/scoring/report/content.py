"""What the official report says, built once from the frozen results and rendered three ways.

Why one model: the HTML page, the DOCX and the PDF must carry the same figures, so each
renderer only lays out the blocks built here; every number is formatted by
services.scoring.figures exactly as the dashboard shows it (docs/architecture.md, decisions 16
and 33).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from contracts.campaign import Campaign, UnitKind
from services.scoring.figures import TEXT, UnitFigures, all_unit_figures, deduction, number
from services.scoring.method import Results
from services.scoring.publication import Stage

# The 2021 notice of Sở Nội vụ Sóc Trăng on the online survey, quoted word for word.
PENALTY_RULE = (
    "Trường hợp cơ quan, đơn vị, địa phương không đạt số lượng phiếu theo kế hoạch đề ra thì "
    "điểm điều tra xã hội học của tiêu chí trong Chỉ số cải cách hành chính (theo Quyết định số "
    "92/QĐ-UBND) sẽ giảm tương ứng với số lượng phiếu không thực hiện đánh giá."
)


@dataclass(frozen=True)
class Paragraph:
    text: str
    quote: bool = False  # a quotation, set in italics
    strong: bool = False  # a sub-heading, in bold


@dataclass(frozen=True)
class Table:
    head: list[str]
    rows: list[list[str]]
    numeric: frozenset[int] = frozenset()  # right-aligned columns
    strong: frozenset[int] = frozenset()  # total rows, in bold
    widths: tuple[float, ...] = ()  # relative column widths


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    maximum: float
    text: str  # the figure as printed in the tables
    short: bool  # below quota on some form


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]


Block = Paragraph | Table | Chart


@dataclass
class Section:
    heading: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    lang: str
    draft: bool  # staff copy before publication: "DỰ THẢO – chưa công bố" on every page
    parent_agency: str
    agency: str
    nation: str
    motto: str
    number_line: str
    date_line: str
    title: str
    subtitle: str
    draft_mark: str
    sections: list[Section]
    digest: str
    signer_title: str
    signer_subtitle: str
    signer_name: str
    recipients_head: str
    recipients: list[str]
    file_stem: str


def date_words(day: date, lang: str) -> str:
    if lang == "vi":
        return f"ngày {day.day:02d} tháng {day.month:02d} năm {day.year}"
    return day.strftime("%d %B %Y")


def build_report(
    camp: Campaign, results: Results, stage: Stage, today: date, lang: str = "vi"
) -> Report:
    """The report of frozen results; `stage` must not be live (the caller checks who may see)."""
    if stage.status == "live" or stage.digest is None:
        raise ValueError("the report needs frozen results")

    def t(key: str, **values: object) -> str:
        return TEXT.t(lang, key, **values)

    places = camp.rounding.places

    def num(v: Decimal) -> str:
        return number(v, places, lang)

    head = camp.report
    province = camp.province or ""
    draft = stage.status != "released"
    day = stage.released_on if stage.released_on is not None and not draft else today
    units = all_unit_figures(camp, results)
    sections = [
        _method(camp, units, t, num),
        _responses(units, t),
        _rankings(units, t, num, lambda v: deduction(v, places, lang)),
        Section(
            t("rp.check"),
            [
                Paragraph(t("rp.digest_text", digest=stage.digest)),
                Paragraph(t("rp.verdict_ok" if not draft else "rp.verdict_ok_draft")),
                Paragraph(t("rp.audit_how", campaign=camp.id)),
            ],
        ),
    ]
    if not draft:
        sections[-1].blocks.insert(
            1, Paragraph(t("rp.released", day=day.strftime("%d/%m/%Y"), digest=stage.digest))
        )
    return Report(
        lang=lang,
        draft=draft,
        parent_agency=(head.parent_agency or f"UBND TỈNH {province.upper()}").strip(),
        agency=head.agency or "SỞ NỘI VỤ",
        nation=t("rp.nation"),
        motto=t("rp.motto"),
        number_line=t("rp.number", suffix=head.number_suffix or "BC-SNV"),
        date_line=f"{head.place or province}, {date_words(day, lang)}",
        title=t("rp.title"),
        subtitle=t("rp.subtitle", campaign=camp.name, year=camp.year),
        draft_mark=t("rp.draft_mark"),
        sections=sections,
        digest=stage.digest,
        signer_title=head.signer_title or t("rp.signer_title"),
        signer_subtitle=head.signer_subtitle or "",
        signer_name=head.signer_name or "",
        recipients_head=t("rp.recipients"),
        recipients=[t("rp.recipient_1"), t("rp.recipient_2"), t("rp.recipient_3")],
        file_stem=f"{camp.id}-bao-cao" + ("-du-thao" if draft else ""),
    )


def _method(camp: Campaign, units: list[UnitFigures], t, num) -> Section:
    blocks: list[Block] = [
        Paragraph(t("rp.purpose", campaign=camp.name, province=camp.province, year=camp.year)),
        Paragraph(t("rp.forms_intro", n=len(camp.forms))),
    ]
    rows = []
    for f in camp.forms:  # the plan's quota per form, as the campaign states it
        form_quota = sum(q.ballots for q in camp.quotas if q.form_code == f.code)
        rows.append([f.code, f.name, num(f.max_points), str(form_quota) if form_quota else "–"])
    blocks.append(
        Table(
            [t("rp.col.form_code"), t("rp.col.form"), t("rp.col.max"), t("rp.col.quota")],
            rows,
            numeric=frozenset({2, 3}),
            widths=(1.2, 6, 1.5, 1.5),
        )
    )
    blocks += [
        Paragraph(t("rp.sample", quota=camp.total_quota(), units=len(units))),
        Paragraph(t("rp.method")),
        Paragraph(t("rp.rule_intro")),
        Paragraph(PENALTY_RULE, quote=True),
        Paragraph(t("rp.rule_applied")),
        Paragraph(
            t("rp.rounding", places=camp.rounding.places, mode=t(f"rp.mode.{camp.rounding.mode}"))
        ),
    ]
    return Section(t("rp.method_head"), blocks)


def _responses(units: list[UnitFigures], t) -> Section:
    rows: list[list[str]] = []
    strong = set()
    for u in sorted(units, key=lambda u: (list(UnitKind).index(UnitKind(u.kind)), u.name)):
        for f in u.forms:
            rate = f"{f.received * 100 / f.quota:.0f}%" if f.quota else "–"
            rows.append(
                [u.name, f.form_code, str(f.quota or "–"),
                 str(f.received), rate, str(f.shortfall) if f.quota else "–"]
            )  # fmt: skip
        strong.add(len(rows))
        rows.append(
            [u.name, t("rp.all_forms"), str(u.quota if u.quota is not None else "–"),
             str(u.received), "", str(sum(f.shortfall for f in u.forms))]
        )  # fmt: skip
    table = Table(
        [t("rp.col.unit"), t("rp.col.form_code"), t("rp.col.quota"), t("rp.col.received"),
         t("rp.col.rate"), t("rp.col.missing")],
        rows, numeric=frozenset({2, 3, 4, 5}), strong=frozenset(strong),
        widths=(5, 1.6, 1.3, 1.3, 1.2, 1.2),
    )  # fmt: skip
    return Section(t("rp.responses_head"), [Paragraph(t("rp.responses_intro")), table])


def _rankings(units: list[UnitFigures], t, num, ded) -> Section:
    section = Section(t("rp.rankings_head"))
    for kind in UnitKind:
        members = sorted((u for u in units if u.kind == kind.value), key=lambda u: (u.rank, u.name))
        if not members:
            continue
        section.blocks.append(Paragraph(t(f"sc.kind.{kind.value}"), strong=True))
        section.blocks.append(
            Table(
                [
                    t("rp.col.rank"),
                    t("rp.col.unit"),
                    t("rp.col.raw"),
                    t("rp.col.penalty"),
                    t("rp.col.score"),
                    t("rp.col.max"),
                ],
                [
                    [
                        str(u.rank),
                        u.name,
                        num(u.raw),
                        ded(u.penalty),
                        num(u.total),
                        num(u.max_points),
                    ]
                    for u in members
                ],
                numeric=frozenset({0, 2, 3, 4, 5}),
                widths=(1, 5, 1.5, 1.5, 1.7, 1.3),
            )  # fmt: skip
        )
        section.blocks.append(
            Chart(
                t("rp.chart", kind=t(f"sc.kind.{kind.value}")),
                [
                    Bar(
                        u.name,
                        float(u.total),
                        float(u.max_points),
                        num(u.total),
                        any(f.shortfall for f in u.forms),
                    )
                    for u in members
                ],  # fmt: skip
            )
        )
    return section
