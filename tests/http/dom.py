"""Reading the pages back: scorecard rows, chart points and a series page's headline."""

from __future__ import annotations

from html.parser import HTMLParser


class Dom(HTMLParser):
    """Collects scorecard rows (status, badge words, value, period, target, SPC icon,
    comment), group
    headings, chart points flagged as special causes, and a series page's headline."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.groups: list[str] = []
        self.special_points: list[str] = []
        self.spc: list[str] = []
        self.headline: dict[str, str] = {}
        self._rag_depth = 0
        self._in_group = False
        self._row: dict[str, str] | None = None
        self._text: str | None = None  # the field collecting text now
        self._depth = 0  # open tags inside that field

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if self._text is not None:
            self._depth += 1
        if tag == "tr" and "series-row" in classes:
            self._row = {"indicator": a["data-indicator"], "series": a["data-series"],
                         "status": a["data-status"], "rag": "", "value": "", "comment": "",
                         "spc": "", "period": "", "target": ""}
            self.rows.append(self._row)
        elif tag == "tr" and "group-head" in classes:
            self._in_group = True
            self.groups.append("")
        elif tag == "span" and self._row is not None and (self._rag_depth or "rag" in classes):
            self._rag_depth += 1
        elif tag == "span" and self._row is not None and "value" in classes:
            self._collect("value")
        elif tag == "td" and self._row is not None and "c-comment" in classes:
            self._collect("comment")
        elif tag == "td" and self._row is not None and "c-target" in classes:
            self._collect("target")
        elif tag == "span" and self._row is not None and "period" in classes:
            self._collect("period")
        elif tag == "circle" and a.get("data-special", "0") != "0":
            self.special_points.append(a["data-special"])
        elif tag == "svg" and "spc-icon" in classes and self._row is not None:
            self.spc.append(a["data-spc"])
            self._row["spc"] = a["data-spc"]
        elif tag == "svg" and "spc-icon" in classes and "spc" not in self.headline:
            self.headline["spc"] = a["data-spc"]
        elif a.get("id") == "latest-value":
            self._collect("value_text")
        elif a.get("id") == "comment":
            self._collect("comment")
        elif "hl-value" in classes and "data-status" in a:
            self.headline["status"] = a["data-status"]

    def _collect(self, name: str) -> None:
        self._text, self._depth = name, 0
        if self._row is not None:
            self._row[name] = ""
        else:
            self.headline[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if self._text is not None:
            if self._depth == 0:
                self._text = None
            else:
                self._depth -= 1
        if tag == "span" and self._rag_depth:
            self._rag_depth -= 1
        elif tag == "tr":
            self._row = None
            self._in_group = False

    def handle_data(self, data: str) -> None:
        if self._rag_depth and self._row is not None:
            self._row["rag"] += data
        if self._in_group:
            self.groups[-1] += data.strip()
        if self._text is not None:
            target = self._row if self._row is not None else self.headline
            target[self._text] += data


def parse(html: str) -> Dom:
    dom = Dom()
    dom.feed(html)
    return dom


def series_page(html: str) -> dict[str, str]:
    """Return a series page's latest value text, status, SPC icon and comment."""
    headline = parse(html).headline
    return {"value_text": headline.get("value_text", "").strip(),
            "status": headline.get("status", ""), "spc": headline.get("spc", ""),
            "comment": headline.get("comment", "").strip()}
