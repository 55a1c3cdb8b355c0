"""The official results report (Báo cáo kết quả điều tra xã hội học): one content model,
rendered as an HTML page, a DOCX and a PDF (docs/architecture.md, decision 33)."""
