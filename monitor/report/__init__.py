"""The monthly performance pack: the scorecard as a board-ready PDF, Excel workbook and
HTML page, from the same published evaluation as ``/scorecard`` and ``monitor eval``.

``pack`` decides what goes on which page, ``html`` renders it (the PDF's source and the
``/report`` page), ``pdf`` and ``xlsx`` write the files, ``generate`` evaluates a month
for it, ``delivery`` runs the scheduled packs (``[[reports]]``) through the notifier's
outbox, and ``commands`` is ``monitor report``.
"""
