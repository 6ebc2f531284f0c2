"""How out-of-office and other automatic replies word themselves, by language.

`SUBJECT_PREFIXES` are what Outlook, Exchange, Gmail, Lotus/HCL Notes and common webmailers put
before the original subject ("Automatic reply: <subject>") or as a bracketed tag ("【自動返信】").
People do not write those themselves, so such a subject is an automatic reply on its own evidence.
Bare nouns ("Absence:", "Urlaub:") are left out: a customer of an HR product writes them.

`BODY_PHRASES` are what out-of-office texts say in their first lines. A customer may write the same
words ("I will be out of the office next week, please call me"), so classify.py counts them only
together with a header that shows the mail came from a rule or an auto-responder.

Matching is on `fold`ed text (case, accents, width and whitespace folded), by prefix and substring
tests only: linear in the text, no regular expressions.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Wording:
    subject_prefixes: tuple[str, ...]
    body_phrases: tuple[str, ...]


# Languages: the EU's official languages, Norwegian, Russian, Ukrainian, Turkish, Chinese
# (simplified and traditional), Japanese and Korean. Keys are BCP 47 tags.
# fmt: off
LANGUAGES: dict[str, Wording] = {
    "en": Wording(
        (
            "automatic reply", "auto reply", "autoreply", "auto-reply", "automatic response", "automated response",
            "automated reply", "auto response", "autoresponse", "auto-response", "out of office autoreply",
            "out of office reply", "out of office", "out of the office", "vacation reply", "vacation response",
            "vacation notice", "vacation message", "away from the office", "away from office",
        ),
        (
            "i am out of the office", "i'm out of the office", "i am currently out of the office",
            "i will be out of the office", "i am out of office", "i am on vacation", "i am on annual leave",
            "i am on holiday", "i am away from the office", "limited access to email", "limited access to e-mail",
            "i will respond to your message when i return", "i will reply when i return", "upon my return",
        ),
    ),
    "de": Wording(
        (
            "automatische antwort", "abwesenheitsnotiz", "automatische abwesenheitsnotiz", "abwesenheitsmeldung",
            "nicht im büro", "außer haus", "automatische rückantwort", "abwesenheitsassistent",
        ),
        (
            "ich bin derzeit nicht im büro", "ich bin zurzeit nicht im büro", "ich bin nicht im büro",
            "bin ich nicht im büro", "ich bin abwesend", "ich befinde mich im urlaub", "ich bin im urlaub",
            "bin ich im urlaub", "ich bin außer haus", "ihre nachricht wird nicht weitergeleitet",
        ),
    ),
    "fr": Wording(
        (
            "réponse automatique", "absent du bureau", "absente du bureau", "absence du bureau", "message d'absence",
            "réponse automatique d'absence du bureau", "absent(e) du bureau",
        ),
        (
            "je suis absent", "je suis absente", "je serai absent", "je serai absente", "je suis actuellement absent",
            "je suis en congé", "je suis en congés", "je n'aurai pas accès à mes e-mails", "je suis hors du bureau",
        ),
    ),
    "es": Wording(
        (
            "respuesta automática", "fuera de la oficina", "fuera de oficina",
            "respuesta automática de fuera de la oficina",
        ),
        (
            "estoy fuera de la oficina", "me encuentro fuera de la oficina", "estaré fuera de la oficina",
            "estoy de vacaciones", "me encuentro de vacaciones", "estaré de vacaciones",
        ),
    ),
    "it": Wording(
        ("risposta automatica", "fuori sede", "fuori ufficio", "risposta non al computer", "assente dall'ufficio"),
        (
            "sono fuori ufficio", "sarò fuori ufficio", "sono in ferie", "sarò in ferie", "sono assente",
            "al mio rientro",
        ),
    ),
    "pt": Wording(
        ("resposta automática", "fora do escritório", "resposta automática de ausência", "ausente do escritório"),
        (
            "estou fora do escritório", "estarei fora do escritório", "estou de férias", "encontro-me de férias",
            "estou ausente", "encontro-me ausente",
        ),
    ),
    "nl": Wording(
        ("automatisch antwoord", "afwezigheidsbericht", "niet op kantoor", "automatisch afwezigheidsbericht"),
        ("ik ben afwezig", "ik ben niet op kantoor", "ik ben met vakantie", "ik ben op vakantie", "na mijn terugkomst"),
    ),
    "sv": Wording(
        ("automatiskt svar", "autosvar", "frånvaromeddelande", "inte på kontoret"),
        ("jag är på semester", "jag är inte på kontoret", "jag är ledig", "jag är frånvarande", "jag är tjänstledig"),
    ),
    "da": Wording(
        ("automatisk svar", "autosvar", "fraværsmeddelelse", "ikke på kontoret"),
        ("jeg er på ferie", "jeg er ikke på kontoret", "jeg er fraværende", "jeg holder ferie"),
    ),
    "nb": Wording(
        ("automatisk svar", "autosvar", "fraværsmelding", "ikke på kontoret"),
        ("jeg er på ferie", "jeg er ikke på kontoret", "jeg er fraværende", "jeg er borte"),
    ),
    "fi": Wording(
        ("automaattinen vastaus", "poissaoloilmoitus", "poissa toimistolta", "lomavastaaja"),
        ("olen lomalla", "olen poissa toimistolta", "olen vuosilomalla", "olen poissa", "palaan toimistolle"),
    ),
    "pl": Wording(
        ("odpowiedź automatyczna", "automatyczna odpowiedź", "poza biurem", "autoodpowiedź", "nieobecność w biurze"),
        (
            "jestem na urlopie", "jestem poza biurem", "przebywam na urlopie", "przebywam poza biurem",
            "jestem nieobecny", "jestem nieobecna",
        ),
    ),
    "cs": Wording(
        ("automatická odpověď", "mimo kancelář", "automatická odpověď mimo kancelář"),
        ("jsem na dovolené", "jsem mimo kancelář", "nejsem v kanceláři", "jsem nepřítomen", "jsem nepřítomna"),
    ),
    "sk": Wording(
        ("automatická odpoveď", "mimo kancelárie", "mimo úradu"),
        ("som na dovolenke", "som mimo kancelárie", "nie som v kancelárii", "som mimo úradu", "som neprítomný"),
    ),
    "hu": Wording(
        ("automatikus válasz", "házon kívül", "irodán kívül"),
        ("szabadságon vagyok", "házon kívül vagyok", "irodán kívül vagyok", "nem vagyok az irodában"),
    ),
    "ro": Wording(
        ("răspuns automat", "în afara biroului", "absent de la birou"),
        ("sunt în concediu", "nu sunt la birou", "sunt în afara biroului", "sunt plecat din birou"),
    ),
    "bg": Wording(
        ("автоматичен отговор", "извън офиса", "автоматичен отговор за отсъствие"),
        ("в отпуск съм", "извън офиса съм", "няма да бъда в офиса", "отсъствам от офиса"),
    ),
    "el": Wording(
        ("αυτόματη απάντηση", "εκτός γραφείου"),
        ("είμαι εκτός γραφείου", "βρίσκομαι σε άδεια", "είμαι σε άδεια", "απουσιάζω από το γραφείο"),
    ),
    "hr": Wording(
        ("automatski odgovor", "izvan ureda"),
        ("na godišnjem sam odmoru", "nisam u uredu", "izvan ureda sam", "odsutan sam", "odsutna sam"),
    ),
    "sl": Wording(
        ("samodejni odgovor", "izven pisarne", "odsotnost z dela"),
        ("sem na dopustu", "sem odsoten", "sem odsotna", "nisem v pisarni"),
    ),
    "et": Wording(
        ("automaatvastus", "automaatne vastus", "kontorist väljas"),
        ("olen puhkusel", "olen kontorist eemal", "viibin puhkusel", "olen eemal"),
    ),
    "lv": Wording(
        ("automātiskā atbilde", "automātiska atbilde", "ārpus biroja"),
        ("esmu atvaļinājumā", "esmu prombūtnē", "neesmu birojā"),
    ),
    "lt": Wording(
        ("automatinis atsakymas", "ne biure", "nesu biure"),
        ("esu atostogose", "nesu biure", "manęs nėra biure"),
    ),
    "ga": Wording(
        ("freagra uathoibríoch", "as an oifig"),
        ("tá mé as an oifig", "táim as an oifig", "tá mé ar saoire", "táim ar saoire"),
    ),
    "mt": Wording(
        ("tweġiba awtomatika", "risposta awtomatika", "barra mill-uffiċċju"),
        ("jien barra mill-uffiċċju", "jien fuq leave", "mhux se nkun l-uffiċċju"),
    ),
    "ru": Wording(
        ("автоматический ответ", "автоответ", "вне офиса", "нет на месте"),
        ("я в отпуске", "меня нет в офисе", "я нахожусь в отпуске", "я отсутствую", "я вне офиса"),
    ),
    "uk": Wording(
        ("автоматична відповідь", "автовідповідь", "поза офісом"),
        ("я у відпустці", "мене немає в офісі", "я відсутній", "я відсутня"),
    ),
    "tr": Wording(
        ("otomatik yanıt", "otomatik cevap", "ofis dışında"),
        ("izindeyim", "ofis dışındayım", "ofiste değilim", "yıllık izindeyim", "tatildeyim"),
    ),
    "zh-Hans": Wording(
        ("自动回复", "自动答复", "自动应答", "外出自动回复", "不在办公室"),
        ("我目前不在办公室", "我正在休假", "我不在办公室", "休假期间", "外出期间"),
    ),
    "zh-Hant": Wording(
        ("自動回覆", "自動答覆", "自動回復", "自動回應", "不在辦公室"),
        ("我目前不在辦公室", "我正在休假", "我不在辦公室", "休假期間", "外出期間"),
    ),
    "ja": Wording(
        ("自動応答", "自動返信", "自動回答", "不在通知", "不在のお知らせ", "外出中の自動応答"),
        ("不在にしております", "休暇をいただいております", "外出しております", "休暇中です", "不在です"),
    ),
    "ko": Wording(
        ("자동 회신", "자동 응답", "자동 답장", "부재중", "부재 중", "부재중 자동 응답"),
        ("부재중입니다", "휴가 중입니다", "휴가중입니다", "사무실에 없습니다", "자리를 비웠습니다"),
    ),
}
# fmt: on

# Subjects are short; out-of-office texts say what they are in their first lines.
MAX_SUBJECT_CHARS = 1_000
MAX_BODY_CHARS = 2_000
_TAG_BRACKETS = {"[": "]", "【": "】", "(": ")", "<": ">"}


def fold(text: str) -> str:
    """Lower-case, accent-free, width-folded text with single spaces.

    "Réponse automatique :" and "reponse automatique:" fold alike, and so do "：" and ":"; Turkish
    dotted and dotless i fold to "i" so that upper-case Turkish subjects match.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(character for character in decomposed if not unicodedata.combining(character))
    return " ".join(stripped.casefold().replace("ı", "i").split())


_FOLDED_PREFIXES = [
    (language, fold(prefix)) for language, wording in LANGUAGES.items() for prefix in wording.subject_prefixes
]
_FOLDED_PHRASES = [
    (language, fold(phrase)) for language, wording in LANGUAGES.items() for phrase in wording.body_phrases
]


def _is_prefix_of(prefix: str, subject: str) -> bool:
    """`subject` is `prefix` alone, or `prefix` and a colon (Outlook: "Automatic reply: <subject>").

    Without the colon a prefix is a customer's words: "Out of office hours support".
    """
    if not subject.startswith(prefix):
        return False
    rest = subject[len(prefix) :].lstrip()
    return not rest or rest.startswith(":")


def auto_reply_subject(subject: str) -> tuple[str, str] | None:
    """(language, prefix) when `subject` starts with an automatic-reply prefix, as text or as a
    leading bracketed tag ("[Auto-Reply] ...", "【自動返信】..."), after other leading tags ("[EXT]")."""
    folded = fold(subject[:MAX_SUBJECT_CHARS])
    for _ in range(4):  # a few leading tags at most: "[EXT] [SB-12] Automatic reply: ..."
        for language, prefix in _FOLDED_PREFIXES:
            if _is_prefix_of(prefix, folded):
                return language, prefix
        closing = _TAG_BRACKETS.get(folded[:1])
        end = folded.find(closing, 1) if closing else -1
        if end < 0:
            return None
        tag = folded[1:end].strip()
        for language, prefix in _FOLDED_PREFIXES:
            if tag == prefix:
                return language, prefix
        folded = folded[end + 1 :].lstrip()
    return None


def out_of_office_phrase(text: str) -> tuple[str, str] | None:
    """(language, phrase) of the first out-of-office phrase in the opening of `text`."""
    folded = fold(text[:MAX_BODY_CHARS])
    for language, phrase in _FOLDED_PHRASES:
        if phrase in folded:
            return language, phrase
    return None
