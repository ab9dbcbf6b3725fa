"""The report: Tables 1-10 and Figures 2 and 4 of the paper from any result store, as a pure
function of the stored results and the paper's specification (torch-free).

Modules, in the order data flows: loading (the store) -> selection (protocol, epoch selector) ->
cells (the generic cell machinery) -> tables (the ten tables) -> render (Markdown, LaTeX, CSV) ->
build (the whole report on disk); figures, groups and bar are views beside them; cli is the command line.
"""
