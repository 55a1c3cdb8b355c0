"""The campaign workbook: a campaign as an .xlsx that Sở Nội vụ staff fill in Excel.

rules.py holds the sheets, headers and the readers of one cell; export.py writes a campaign
(or the empty template) as a workbook; read.py turns an upload back into a Campaign or a list
of problems located by sheet, row and column; worker.py runs read.py in a bounded child
process (docs/architecture.md, decisions 27 and 38).
"""
