"""The pack as PDF: the HTML pack laid out by WeasyPrint (A4 landscape, page numbers)."""

from __future__ import annotations

import logging


def render(document: str) -> bytes:
    """Return the PDF of ``document``, the pack's HTML (:func:`monitor.report.html.render`:
    rendered once, whether or not the HTML is also written)."""
    import weasyprint

    # WeasyPrint logs every CSS property it does not know at WARNING; the pack's CSS is
    # ours and tested, so only its errors are worth a line.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    logging.getLogger("weasyprint.progress").setLevel(logging.ERROR)
    pdf: bytes = weasyprint.HTML(string=document).write_pdf()
    return pdf
