"""The pack as PDF: the HTML pack laid out by WeasyPrint (A4 landscape, page numbers)."""

from __future__ import annotations

import logging

from monitor.report import html
from monitor.report.pack import Pack


def render(pack: Pack) -> bytes:
    """Return the PDF of ``pack``: the HTML document of :func:`monitor.report.html.render`."""
    import weasyprint

    # WeasyPrint logs every CSS property it does not know at WARNING; the pack's CSS is
    # ours and tested, so only its errors are worth a line.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    logging.getLogger("weasyprint.progress").setLevel(logging.ERROR)
    document = weasyprint.HTML(string=html.render(pack))
    pdf: bytes = document.write_pdf()
    return pdf
