"""Requests for harmful help (English): an asking frame, a harmful object, and no protective purpose.

A sentence is flagged when it *asks* for something (``how do I``, ``give me``, ``write a script``,
``step by step`` ...) about something in a harm lexicon (explosives, nerve agents, drugs to make or
sell, malware, fraud, violence against people, self-harm methods, sexual content with minors, hate
propaganda ...), and no protective purpose is stated (``how to protect``, ``signs of``,
``report``, ``prevent``, ``history of`` ...). The lexicon names each object's OpenAI category.

It complements the learned classifier: word lists generalise to phrasings the classifier's training
sources never used, and the protective-purpose cues keep questions about risks (security,
medicine, fiction, research) out. Patterns are compiled once; a substring pre-check skips texts
that mention no harmful object.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..verdict import Finding, FindingAction

# (category, content, terms): whole-word regular expressions, matched case-insensitively, after the
# sentence's first asking frame. Content harms (hate, harassment, sexual, deception, malicious code)
# are also matched after a "write a ..." frame that follows a how-to frame.
_HARMS: tuple[tuple[str, bool, str], ...] = (
    ("illicit/violent", False, r"(?:pipe |car |nail |dirty |fertili[sz]er |letter )?bombs?|explosives?|detonators?|ied|"
     r"napalm|molotov|thermite|nerve agents?|sarin|vx|tabun|ricin|anthrax|botulinum|bioweapons?|"
     r"biological weapons?|chemical weapons?|weapons? of mass destruction|mustard gas|chlorine gas|"
     r"ghost guns?|untraceable (?:guns?|firearms?)|silencers?|suppressors?|fully automatic|"
     r"mass shootings?|school shootings?|terror(?:ist)? attacks?|massacre|"
     r"poison(?:ing)? (?:someone|somebody|my|his|her|a person|people|the water)|undetectable poison|"
     r"assassinat\w*|kidnap\w*|hostages?|derail|arson|set fire to"),
    ("illicit", False, r"meth(?:amphetamine)?|crystal meth|cocaine|crack cocaine|heroin|fentanyl|lsd|mdma|ecstasy|"
     r"ddos|zero-day exploits?|"
     r"(?:steal\w*|buy\w*|sell\w*|get|obtain\w*) (?:\w+ ){0,3}credit card (?:numbers|details)|credit card fraud|"
     r"stolen (?:credit cards?|cars?|data|identities|goods)|"
     r"identity theft|money launder\w*|launder (?:money|the money|cash)|counterfeit\w*|forg(?:e|ed|ery|ing)|"
     r"fake (?:ids?|passports?|documents|reviews|news|invoices?|charity|doctor's note)|"
     r"tax evasion|evade taxes|cheat on my taxes|insider trading|ponzi|pyramid scheme|"
     r"shoplift\w*|steal\w*|burglar\w*|"
     r"break into (?:a|the|my|someone|his|her|their|an?)\W*(?:\w+ )?(?:house|home|car|apartment|account|phone|building|store|"
     r"safe|office|network|system|computer|email)|hack(?:ing)? into|hotwire|pick(?:ing)? a lock|"
     r"bribe\w*|extort\w*|blackmail\w*|smuggl\w*|human trafficking|traffic(?:king)? (?:drugs|people|women|girls)|"
     r"scam\w*|fraud\w*|embezzl\w*|without (?:a|any) (?:prescription|background check|license)"),
    ("illicit", True, r"ransomware|malware|keyloggers?|botnets?|spyware|trojans?|rootkits?|viruse?s? that|"
     r"phishing (?:emails?|pages?|sites?|messages?|kits?)|disinformation|propaganda|fake news|"
     r"fake (?:reviews|news|studies|evidence|doctor's note|charity)|election (?:fraud|was rigged)|"
     r"scam (?:script|emails?|messages?|calls?)"),
    ("violence", False, r"torture\w*|strangl\w*|stab (?:someone|somebody|him|her|them|a person)|"
     r"beat (?:someone|him|her|them|up)|hurt (?:someone|somebody|him|her|them|people|my)|"
     r"kill (?:someone|somebody|him|her|them|people|my|a person)|murder (?:someone|somebody|him|her|my|a person)|"
     r"maim|dismember\w*|behead\w*|without leaving (?:marks|a trace|evidence)"),
    ("self-harm", False, r"suicide|kill myself|end my life|hurt myself|cut myself|self-harm\w*|overdose|"
     r"starve myself|noose|lethal dose"),
    ("sexual/minors", True, r"(?:child|children|minor|minors|underage|\d{1,2}[- ]year[- ]old|teen\w*|kids?)"
     r"[\w\s,']{0,40}(?:sex\w*|nude\w*|naked|porn\w*|erotic\w*|explicit)|"
     r"(?:sex\w*|nude\w*|naked|porn\w*|erotic\w*|explicit)[\w\s,']{0,40}"
     r"(?:child|children|minor|minors|underage|\d{1,2}[- ]year[- ]old|teen\w*|kids?)|groom\w* (?:a |the )?(?:child|kid|minor|teen)"),
    ("sexual", True, r"porn\w*|explicit sex\w*|sex scene|erotic\w*|nude\w*|sexually explicit"),
    ("hate", True, r"inferior|subhuman|vermin|white supremac\w*|racial slurs?|slurs|ethnic cleansing|"
     r"holocaust (?:never|didn't|did not)|genetically (?:inferior|less intelligent)|"
     r"(?:jews|muslims|blacks|immigrants|gays|women|mexicans|asians|christians|arabs) (?:are|should)"),
    ("harassment", True, r"harass (?:her|him|them|someone|a|my)|bully (?:her|him|them|someone|a|my)|"
     r"humiliat\w* (?:her|him|them|someone|a|my)|doxx?\w*|stalk (?:her|him|them|someone|my)|"
     r"threatening (?:message|letter|note|email|text)s?|intimidat\w* (?:her|him|them|someone|a|my)|"
     r"revenge porn|home address of|make (?:him|her|them) (?:cry|feel worthless)"),
)
# Asking how to do something.
_HOW = re.compile(
    r"\b(?:how (?:do|can|could|would|should|might) (?:i|we|you|one|someone|a person)|how to|ways? to|"
    r"best way|easiest way|most effective way|quickest way|step[- ]by[- ]step|instructions? (?:for|on|to)|"
    r"tutorial|guide (?:on|to|for)|recipe|teach me|show me how|tell me (?:how|the best)|"
    r"explain (?:how|the (?:best|easiest))|help me (?:to )?\w+|plan (?:a|an|to)|"
    r"where (?:can|do) i (?:buy|get|find)|what(?:'s| is) the (?:best|easiest|most effective|quickest)|"
    r"i want to|i'm going to|i am going to|i need to|give me (?:a |the )?(?:steps|method|list of ways|tips))",
    re.I,
)
# Asking for content to be produced.
_PRODUCE = re.compile(
    r"\b(?:(?:write|create|generate|develop|design|draft|compose|produce|code|program|make up)\s+(?:me\s+)?"
    r"(?:a|an|the|some|\d+)?\b|give me (?:a |some )?(?:list|arguments|examples|insults|jokes)|convince)",
    re.I,
)
# A stated protective, educational or clinical purpose ("how to protect", "signs of", "report").
_PROTECTIVE = re.compile(
    r"\b(?:protect\w*|prevent\w*|defen[cd]\w*|detect\w*|recogni[sz]\w*|spot|avoid\w*|report\w*|"
    r"train (?:my|our|the) (?:staff|team|employees)|volunteer|anti-\w+|deal with|novel|fiction|story|scene|"
    r"villain|mystery|game|screenplay|"
    r"safe(?:ly|ty)?|secure|warning signs?|signs of|symptoms|treat(?:ment)?|recover\w*|support|cope|"
    r"help (?:a|my) (?:friend|child|partner)|history of|historical|why (?:do|did|are|is)|"
    r"what (?:is|are|was|were) the|legal(?:ly)?|laws?|penalt\w*|restraining order|counter\w*|"
    r"research\w* (?:shows?|on)|awareness|educat\w*|who can i talk to|hotline|block)\b",
    re.I,
)
_TRIGGERS = (
    "bomb", "explos", "deton", "napalm", "molotov", "thermite", "nerve", "sarin", "vx", "tabun", "ricin",
    "anthrax", "botul", "weapon", "gas", "gun", "firearm", "silencer", "suppressor", "automatic", "shoot",
    "terror", "massacre", "poison", "assassin", "kidnap", "hostage", "derail", "arson", "fire", "meth", "cocaine",
    "heroin", "fentanyl", "lsd", "mdma", "ecstasy", "ransom", "malware", "keylog", "botnet", "spyware", "trojan",
    "rootkit", "ddos", "exploit", "phish", "credit card", "stolen", "identity", "launder", "counterfeit", "forg",
    "fake", "tax", "insider", "ponzi", "pyramid", "shoplift", "steal", "burglar", "break into", "hack", "hotwire",
    "lock", "brib", "extort", "blackmail", "smuggl", "traffic", "scam", "fraud", "embezzl", "prescription",
    "background check", "license", "disinformation", "propaganda", "election", "tortur", "strangl", "stab", "beat",
    "hurt", "kill", "murder", "maim", "dismember", "behead", "without leaving", "suicide", "myself", "my life",
    "self-harm", "overdose", "noose", "lethal", "sex", "nude", "naked", "porn", "erotic", "explicit", "groom",
    "inferior", "subhuman", "vermin", "supremac", "slur", "cleansing", "holocaust", "genetically", "jews", "muslims",
    "blacks", "immigrants", "gays", "women", "mexicans", "asians", "christians", "arabs",
    "harass", "bully", "humiliat", "dox", "stalk", "threat", "intimidat", "address", "cry", "worthless",
)


class HarmfulRequestRail:
    """Flags requests for harmful help by an asking frame plus a harm-lexicon object.

    Args:
        action: What a flagged text does.
        score: The score its findings report (a heuristic: one fixed confidence).
    """

    name = "harmful_request"

    def __init__(self, action: FindingAction = "block", score: float = 0.8) -> None:
        self._action: FindingAction = action
        self._score = score
        # One alternation per frame kind; the matching group names the category.
        self._groups = [category for category, _, _ in _HARMS]
        self._any = re.compile("|".join(rf"\b(?P<g{i}>{t})\b" for i, (_, _, t) in enumerate(_HARMS)), re.I)
        self._content = re.compile(
            "|".join(rf"\b(?P<g{i}>{t})\b" for i, (_, content, t) in enumerate(_HARMS) if content), re.I
        )

    def categories(self) -> Sequence[str]:
        """The OpenAI categories of the lexicon."""
        return tuple(dict.fromkeys(category for category, _, _ in _HARMS))

    def scan(self, text: str) -> list[Finding]:
        """At most one finding: the first harm-lexicon category found in a sentence that asks for it."""
        lowered = text.lower()
        if not any(t in lowered for t in _TRIGGERS):
            return []
        for sentence in _sentences(text):
            how, produce = _HOW.search(sentence), _PRODUCE.search(sentence)
            if (how is None and produce is None) or _PROTECTIVE.search(sentence):
                continue
            # Any harm after the first asking frame; content harms also after "write a" when the
            # sentence asks how-to elsewhere ("how to ... then write a post calling them vermin").
            first = how if how is not None else produce
            assert first is not None
            found = [self._any.search(sentence, first.start())]
            if how is not None and produce is not None:
                found.append(self._content.search(sentence, produce.start()))
            for m in found:
                if m is not None and m.lastgroup is not None:
                    category = self._groups[int(m.lastgroup[1:])]
                    return [Finding(self.name, category, "request", self._action, score=self._score)]
        return []


_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")


def _sentences(text: str) -> list[str]:
    # Long texts: the request is in the last few sentences (context first, question last).
    found = _SENTENCE.findall(text)
    return found if len(found) <= 12 else found[:4] + found[-8:]
