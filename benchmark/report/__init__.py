"""The report: Tables 1-10 and Figures 2 and 4 of the paper from any result store, as a pure
function of the stored results and the paper's specification (torch-free).

Modules, in the order data flows: loading (the store) -> selection (protocol, epoch selector) ->
cells (the generic cell machinery, with specs: what a table is made of, and labels: trial settings and
variants) -> tables (the ten tables) -> render (Markdown, LaTeX, CSV) -> build (the whole report on
disk); figures, groups and bar are views beside them; page (with page_format, page_tables,
page_sections) is the HTML page; diagnosis (with diagnosis_reading, diagnosis_verdict) is the bias
diagnosis; cli is the command line.
"""
