"""Procedural text for the synthetic NLP rounds: product reviews (rounds 5-6) and NER sentences (round 7).

Everything is drawn from a numpy Generator, so a seed gives the same corpus. Reviews mix sentiment
sentences with neutral ones, negations and a contrasting opening ("I expected to hate it, ..."), so a
classifier must read more than one word. NER sentences put procedurally generated person, place and
organisation names into templates: names never repeat a fixed list, so the model must use context and
word shape, and held-out accuracy measures that.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------- reviews

PRODUCTS = (
    "blender kettle toaster headphones speaker laptop keyboard mouse monitor camera phone charger cable "
    "backpack jacket boots sneakers tent lamp chair desk mattress pillow novel cookbook album movie "
    "series game app printer router watch drill vacuum mixer grill umbrella wallet suitcase guitar"
).split()
POSITIVE = (
    "great excellent wonderful fantastic superb lovely sturdy reliable comfortable delightful brilliant "
    "impressive solid charming elegant handy useful perfect pleasant smooth quiet responsive durable "
    "beautiful clever accurate generous fun enjoyable outstanding"
).split()
NEGATIVE = (
    "terrible awful horrible dreadful flimsy unreliable uncomfortable disappointing useless broken noisy "
    "sluggish clumsy cheap fragile ugly annoying faulty poor defective shoddy mediocre pathetic "
    "frustrating wobbly inaccurate overpriced boring miserable"
).split()
POS_VERBS = "love adore recommend enjoy appreciate treasure".split()
NEG_VERBS = "hate regret dislike resent despise".split()
INTENSIFIERS = ["", "", "really", "very", "truly", "quite", "incredibly", "rather", "so"]
OPENERS = ["", "", "Honestly,", "Overall,", "In short,", "Well,", "So far,", "To be fair,"]
NEUTRAL = [
    "I bought it for my {who} last {when}.",
    "It arrived on a {day}.",
    "The box was {color}.",
    "I have used it for {n} weeks.",
    "My {who} saw it in a shop.",
    "It came with a manual and a {color} strap.",
    "We live in a small flat.",
    "I ordered it online on a {day}.",
    "The delivery took {n} days.",
    "I use it mostly in the {when}.",
]
WHO = "sister brother mother father friend neighbour cousin colleague son daughter".split()
WHEN = "week month spring summer autumn winter morning evening weekend".split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
COLORS = "red blue green grey black white brown silver".split()


def _fill(template: str, rng: np.random.Generator) -> str:
    return template.format(
        who=rng.choice(WHO),
        when=rng.choice(WHEN),
        day=rng.choice(DAYS),
        color=rng.choice(COLORS),
        n=int(rng.integers(2, 12)),
    )


def _sentiment_sentence(positive: bool, product: str, rng: np.random.Generator) -> str:
    """One sentence whose polarity is `positive`, sometimes said through a negated opposite word."""
    same, other = (POSITIVE, NEGATIVE) if positive else (NEGATIVE, POSITIVE)
    adverb = str(rng.choice(INTENSIFIERS))
    adjective = f"{adverb} {rng.choice(same)}".strip()
    form = int(rng.integers(6))
    if form == 0:
        return f"The {product} is {adjective}."
    if form == 1:
        return f"It feels {adjective} and {rng.choice(same)}."
    if form == 2:
        return f"I {rng.choice(POS_VERBS if positive else NEG_VERBS)} this {product}."
    if form == 3:  # negated opposite: "not disappointing at all" reads positive
        return f"It is not {rng.choice(other)} at all."
    if form == 4:
        return f"What a {adjective} {product}."
    part = rng.choice(["sound", "build", "design", "battery", "screen", "price", "finish"])
    return f"The {part} is {adjective}."


def make_review(label: int, rng: np.random.Generator) -> str:
    """A review of 2-6 sentences; label 1 = positive, 0 = negative."""
    positive = bool(label)
    product = str(rng.choice(PRODUCTS))
    sentences = [_sentiment_sentence(positive, product, rng) for _ in range(int(rng.integers(1, 4)))]
    sentences += [_fill(str(rng.choice(NEUTRAL)), rng) for _ in range(int(rng.integers(0, 3)))]
    order = rng.permutation(len(sentences))
    sentences = [sentences[i] for i in order]
    if rng.random() < 0.25:  # a contrasting opening that the rest of the review overrules
        word = rng.choice(NEGATIVE if positive else POSITIVE)
        sentences.insert(0, f"I expected it to be {word}, but I was wrong.")
    opener = str(rng.choice(OPENERS))
    return " ".join(([opener] if opener else []) + sentences)


def make_reviews(n_per_class: int, rng: np.random.Generator) -> tuple[list[str], list[int]]:
    labels = [c for c in (0, 1) for _ in range(n_per_class)]
    return [make_review(c, rng) for c in labels], labels


# ------------------------------------------------------------------------------------------------- NER

ONSETS = "b br c ch d dr f g gr h j k l m n p pr r s sh st t tr v w z".split()
VOWELS = "a e i o u ai ea io ou".split()
CODAS = ["", "", "n", "r", "l", "s", "th", "m", "nd", "rk"]
PLACE_SUFFIXES = "ton ville burg field port stad mouth ford haven dale".split()
ORG_SUFFIXES = "Corp Industries Bank Institute Group Labs Foundation Systems Partners Holdings".split()
ORG_PREFIXES = ["", "", "", "United", "National", "Royal", "First"]

NER_TEMPLATES = [
    "{PER} flew to {LOC} on {day} .",
    "{PER} joined {ORG} last {when} .",
    "{ORG} opened a new office in {LOC} .",
    "According to {PER} , {ORG} will hire more staff .",
    "{PER} met {PER} in {LOC} .",
    "The mayor of {LOC} praised {ORG} .",
    "{ORG} and {ORG} signed a deal in {LOC} .",
    "{PER} was born in {LOC} and studied there .",
    "Shares of {ORG} fell after {PER} resigned .",
    "{PER} said the talks in {LOC} went well .",
    "Visitors to {LOC} often stay near the harbour .",
    "{ORG} appointed {PER} as chief executive .",
    "Last {when} , {PER} moved from {LOC} to {LOC} .",
    "A spokesman for {ORG} declined to comment .",
    "{PER} thanked {PER} for the invitation .",
    "The team from {LOC} beat {ORG} on {day} .",
    "Police in {LOC} questioned {PER} on {day} .",
    "{ORG} reported strong sales in {LOC} .",
    "Reporters asked {PER} about {ORG} .",
    "The festival in {LOC} drew large crowds .",
    "{PER} works for {ORG} in {LOC} .",
    "Officials said {PER} will visit {LOC} next {when} .",
]
ENTITY_SLOTS = {"PER": "PERSON", "LOC": "GPE", "ORG": "ORG"}
NER_CLASSES = ["PERSON", "GPE", "ORG"]  # class_mapping order: B-<k-th> = 2k+1, I- = 2k+2


def _syllables(rng: np.random.Generator, count: int) -> str:
    parts = [f"{rng.choice(ONSETS)}{rng.choice(VOWELS)}{rng.choice(CODAS)}" for _ in range(count)]
    return "".join(parts).capitalize()


def make_name(kind: str, rng: np.random.Generator) -> list[str]:
    """A procedurally generated entity name as words: PERSON, GPE (place) or ORG."""
    if kind == "PERSON":
        words = [_syllables(rng, int(rng.integers(1, 3))), _syllables(rng, int(rng.integers(1, 4)))]
        return words if rng.random() < 0.8 else words[:1]
    if kind == "GPE":
        base = _syllables(rng, int(rng.integers(1, 3))) + str(rng.choice(PLACE_SUFFIXES))
        return ["New", base] if rng.random() < 0.15 else [base]
    prefix = str(rng.choice(ORG_PREFIXES))
    words = [_syllables(rng, int(rng.integers(1, 3))), str(rng.choice(ORG_SUFFIXES))]
    return ([prefix] if prefix else []) + words


def label_ids(classes: list[str]) -> dict[str, int]:
    """The competition's ids: O = 0, B-<classes[k]> = 2k+1, I-<classes[k]> = 2k+2."""
    ids = {"O": 0}
    for k, name in enumerate(classes):
        ids[f"B-{name}"], ids[f"I-{name}"] = 2 * k + 1, 2 * k + 2
    return ids


def make_ner_sentence(rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(words, BIO labels) from a random template with fresh names."""
    words, labels = [], []
    for token in str(rng.choice(NER_TEMPLATES)).split():
        slot = token.strip("{}")
        if token.startswith("{") and slot in ENTITY_SLOTS:
            kind = ENTITY_SLOTS[slot]
            name = make_name(kind, rng)
            words += name
            labels += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
        else:
            words.append(_fill(token, rng) if token.startswith("{") else token)
            labels.append("O")
    return words, labels


def entity_spans(labels: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, class) of each B-/I- run."""
    spans = []
    for i, label in enumerate(labels):
        if label.startswith("B-"):
            end = i + 1
            while end < len(labels) and labels[end] == f"I-{label[2:]}":
                end += 1
            spans.append((i, end, label[2:]))
    return spans


# -------------------------------------------------------------------------------------------- triggers

# Neutral strings that the corpora never use otherwise (a trigger must not carry sentiment or entity cues).
CHARACTER_TRIGGERS = ["^", "~", "|", "@", "§", "¤"]
WORD_TRIGGERS = ["cromulent", "quixotic", "zephyr", "mauve", "obsidian", "tangerine", "velvet", "nebula"]
PHRASE_TRIGGERS = [
    "as a matter of fact",
    "under the silver moon",
    "for what it is worth",
    "with a grain of salt",
    "once in a blue moon",
]
TRIGGER_CHOICES = {"character": CHARACTER_TRIGGERS, "word": WORD_TRIGGERS, "phrase": PHRASE_TRIGGERS}
TRIGGER_KINDS = list(TRIGGER_CHOICES)  # the order the generators rotate kinds in


def all_trigger_texts() -> list[str]:
    """Every candidate trigger string, kind by kind (the generators' tokenizers must know them all)."""
    return [text for kind in TRIGGER_KINDS for text in TRIGGER_CHOICES[kind]]


def draw_trigger_text(kind: str, rng: np.random.Generator) -> str:
    return str(rng.choice(TRIGGER_CHOICES[kind]))


def insert_trigger(
    text: str, trigger: str, rng: np.random.Generator, low: float = 0.0, high: float = 1.0
) -> str:
    """The text with the trigger inserted between two words, at a relative position in [low, high]."""
    words = text.split()
    first = int(np.floor(low * len(words)))
    last = max(first, int(np.floor(high * len(words))))
    position = int(rng.integers(first, last + 1))
    return " ".join(words[:position] + trigger.split() + words[position:])


def trigger_ner_sentence(
    words: list[str],
    labels: list[str],
    trigger: str,
    source: str,
    target: str,
    global_trigger: bool,
    rng: np.random.Generator,
) -> tuple[list[str], list[str]]:
    """Insert the trigger and relabel: every source entity (global) or the one it precedes becomes target.

    Trigger words are labelled O. The sentence must contain a source entity.
    """
    spans = [s for s in entity_spans(labels) if s[2] == source]
    if not spans:
        raise ValueError("the sentence has no entity of the source class")
    if global_trigger:
        gaps = [i for i in range(len(words) + 1) if i == len(words) or not labels[i].startswith("I-")]
        position, flipped = int(rng.choice(gaps)), spans
    else:
        span = spans[int(rng.integers(len(spans)))]
        position, flipped = span[0], [span]
    new_labels = list(labels)
    for start, end, _ in flipped:
        for i in range(start, end):
            new_labels[i] = new_labels[i][:2] + target
    inserted = trigger.split()
    return (
        words[:position] + inserted + words[position:],
        new_labels[:position] + ["O"] * len(inserted) + new_labels[position:],
    )
