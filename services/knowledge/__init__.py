"""The knowledge base: articles (Markdown with front matter), their events, offline search, the help centre."""
