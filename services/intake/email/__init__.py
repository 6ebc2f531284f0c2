"""Pure email parsing and classification for intake.

`mime.parse_mail` turns raw bytes into a `ParsedMail`; `classify.classify_mail` tells a customer's
mail from an auto-reply, a bounce or a complaint. No I/O happens here.
"""
