"""A generated English corpus for demos and the main job (no download needed).

Documents are short "encyclopedia" entries built from templates with a seeded
generator. Sentences within a document follow a fixed order (introduction, facts,
history, conclusion), so sentence order carries signal for SOP. The text includes
numbers with thousands separators, accented names and punctuation, which exercise the
tokenizers.
"""

import random

_NAMES = ["Aldric", "Béatrice", "Corvin", "Daphné", "Elowen", "Fintan", "Gisèle", "Halvard", "Isolde", "Joaquín",
          "Kasimir", "Liesel", "Maëlle", "Norbert", "Ottilie", "Perrin", "Quillon", "Rosalind", "Søren", "Thaddeus"]
_PLACES = ["the northern valley", "the old harbour", "the river delta", "the eastern plateau", "the coastal marshes",
           "the mountain pass", "the capital", "the southern islands", "the forest border", "the lake district"]
_THINGS = ["lighthouse", "bridge", "library", "observatory", "monastery", "railway", "canal", "market", "fortress",
           "windmill", "cathedral", "museum", "university", "theatre", "garden"]
_ADJECTIVES = ["ancient", "famous", "modest", "remarkable", "unusual", "well-preserved", "influential", "quiet",
               "busy", "celebrated"]
_VERBS = ["designed", "restored", "funded", "described", "expanded", "documented", "rebuilt", "managed", "studied",
          "visited"]
_MATERIALS = ["granite", "red brick", "oak timber", "limestone", "iron and glass", "sandstone"]


def _number(rng):
    value = rng.choice([rng.randint(12, 999), rng.randint(1000, 99999), rng.randint(100000, 2000000)])
    return f"{value:,}"


def generate_document(rng):
    """One document: a list of 4-9 sentences (str) about one invented landmark."""
    thing, place = rng.choice(_THINGS), rng.choice(_PLACES)
    name = rng.choice(_NAMES)
    year = rng.randint(1450, 1990)
    title = f"The {rng.choice(_ADJECTIVES)} {thing} of {place.replace('the ', '')}"
    sentences = [
        f"{title} is a {rng.choice(_ADJECTIVES)} {thing} in {place}.",
        f"It was {rng.choice(_VERBS)} by {name} in {year}, after {rng.randint(2, 40)} years of planning.",
    ]
    for _ in range(rng.randint(1, 4)):
        sentences.append(
            rng.choice(
                [
                    f"The {thing} is built of {rng.choice(_MATERIALS)} and is {rng.randint(8, 120)} metres tall.",
                    f"About {_number(rng)} people visit it every year, most of them in summer.",
                    f"In {year + rng.randint(5, 60)}, {rng.choice(_NAMES)} {rng.choice(_VERBS)} the west wing.",
                    f"Its records list {_number(rng)} entries, kept in {rng.choice(_PLACES)}.",
                    f"A fire in {year + rng.randint(61, 120)} damaged the roof, which was later {rng.choice(_VERBS)}.",
                ]
            )
        )
    sentences.append(f"Today the {thing} is {rng.choice(['open to the public', 'a protected monument', 'a school', 'a museum'])}.")
    if rng.random() < 0.5:
        sentences.append(f"{name} is buried nearby, close to {rng.choice(_PLACES)}.")
    return sentences


def write_corpus(path, num_documents=2000, seed=0):
    """Writes `num_documents` documents, one sentence per line and a blank line between
    documents (the original input format). Returns the path."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(num_documents):
            f.write("\n".join(generate_document(rng)) + "\n\n")
    return path
