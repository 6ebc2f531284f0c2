"""The page shell the rating page and the help centre share (services/intake/csat_page.py `customer_page`)."""

from services.intake.csat_page import customer_page, with_ticket
from shared import i18n


def test_a_page_escapes_its_title_and_keeps_the_html_it_was_given():
    page = customer_page("<b>T</b>", "<p>body</p>", i18n.texts("zh"), site='<a href="/kb">KB</a>', main_class="kb")

    assert f'<html lang="{i18n.texts("zh").locale}">' in page and "<title>&lt;b&gt;T&lt;/b&gt;</title>" in page
    assert '<p class="lede"><a href="/kb">KB</a></p>' in page and "\n<p>body</p>\n" in page
    assert '<main id="main" class="container kb">' in page


def test_a_private_page_sends_no_referrer_and_asks_not_to_be_indexed():
    texts = i18n.texts(None)
    public = customer_page("T", "", texts, site="", main_class="kb")
    private = customer_page("T", "", texts, site="", main_class="csat", private=True)

    assert "noindex" not in public and "no-referrer" not in public
    metas = '<meta name="referrer" content="no-referrer">\n  <meta name="robots" content="noindex">\n  <title>'
    assert metas in private


def test_the_ticket_id_is_shown_in_bold_and_everything_escaped():
    assert with_ticket("<{ticket_id}> done", "SB-1&") == '&lt;<strong class="ticket-id">SB-1&amp;</strong>&gt; done'
