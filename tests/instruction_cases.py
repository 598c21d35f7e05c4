"""Hand-written responses for the instruction-checker parity tests: per type, kwargs to try and
responses that pass, fail and sit on the edges (every response is tried with every kwargs of
its type, and the edge responses with every type)."""

from __future__ import annotations

from typing import Any

BULLETS = "* Water the plants.\n* Feed the cat.\n* Lock the door."
DASHES = "Here is the list:\n- one\n- two\n---\nDone."
ESSAY = ("The river runs past the mill. Its water turns the wheel all day.\n\n"
         "In winter the ice slows it down. Nobody minds the quiet.")

CASES: dict[str, tuple[list[dict[str, Any]], list[str]]] = {
    "keywords:existence": (
        [{"keywords": ["garden", "rain"]}, {"keywords": ["Cat"]}, {"keywords": ["a.c"]}],
        ["The garden needs rain.", "GARDEN and RAIN", "No water in the garden.",
         "The category is abc.", "cat", "Rainy gardens everywhere.", "Sure:\nrain\ngarden"],
    ),
    "keywords:frequency": (
        [{"keyword": "tea", "frequency": 2, "relation": "at least"},
         {"keyword": "tea", "frequency": 2, "relation": "less than"},
         {"keyword": " plan ", "frequency": 1, "relation": "at least"}],
        ["Tea, then more tea.", "One tea only.", "Steam rises from the teapot and the tea.",
         "No drinks here.", "TEA TEA TEA", "plan: planning the plan", "te a",
         "Tea time!\nOne cup of tea, no plan."],
    ),
    "keywords:forbidden_words": (
        [{"forbidden_words": ["very", "really"]}, {"forbidden_words": ["ok"]}],
        ["This is very good.", "Every day is fine.", "REALLY?", "It's ok.", "okay then",
         "Nothing to see.", "very\nreally", "Really, listen.\nThe plan is fine."],
    ),
    "keywords:letter_frequency": (
        [{"letter": "e", "let_frequency": 3, "let_relation": "at least"},
         {"letter": "Z", "let_frequency": 2, "let_relation": "less than"}],
        ["Eee!", "bee", "ZZZ!\nbee", "Zz\nzebra", "Zebra zone", "zz top", "The eel sees the sea.", "abc"],
    ),
    "length_constraints:number_words": (
        [{"num_words": 5, "relation": "less than"}, {"num_words": 5, "relation": "at least"},
         {"num_words": 12, "relation": "at least"}],
        ["One two three four.", "One two three four five.", "don't stop, it's 3.5 km",
         "word " * 12, "Hello!\nThis response has several words on lines.", "...", "a_b c-d"],
    ),
    "length_constraints:number_paragraphs": (
        [{"num_paragraphs": 2}, {"num_paragraphs": 3}, {"num_paragraphs": 1}],
        ["First part.\n***\nSecond part.", "***\nA\n***\nB\n***", "A *** B *** C",
         "A\n***\n***\nB", "Just one.", "A****B", "Intro line\nA\n***\nB\nThanks!",
         "A ** B"],
    ),
    "length_constraints:nth_paragraph_first_word": (
        [{"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "In"},
         {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "the"},
         {"num_paragraphs": 3, "nth_paragraph": 3, "first_word": "finally"}],
        [ESSAY, "The start.\n\n\"In\" quotes first.", "The a.\n\nIn, b.\n\nFinally c.",
         "\n\nThe a.\n\nIn b.", "The one.\n\n\n\nIn two.", "'The' one\n\nin two",
         "Intro\n\nThe a\n\nIn b\n\nFinally.", "The.\n\nInside b."],
    ),
    "detectable_content:number_placeholders": (
        [{"num_placeholders": 2}, {"num_placeholders": 1}],
        ["Dear [name], at [address].", "Dear [name].", "No brackets.", "[[nested]] [a",
         "[]", "Send to [city]\n[zip]"],
    ),
    "detectable_content:postscript": (
        [{"postscript_marker": "P.S."}, {"postscript_marker": "P.P.S"},
         {"postscript_marker": "Note:"}],
        ["Body.\nP.S. Bring snacks.", "Body.\np. s. lower", "Body.\nP.P.S More.",
         "Body\np. p. s again", "Body. PS no dots.", "note: see above", "The apps. something"],
    ),
    "detectable_format:number_bullet_lists": (
        [{"num_bullets": 3}, {"num_bullets": 2}, {"num_bullets": 4}],
        [BULLETS, DASHES, "  * indented\n* two", "**bold** not a bullet\n* one\n* two",
         "*\n* a", "1. one\n2. two", "- a\n- b\n- c\n* d", f"Sure!\n{BULLETS}"],
    ),
    "detectable_format:constrained_response": (
        [{}],
        ["My answer is yes.", "I think... My answer is maybe. Because.", "my answer is no.",
         "My answer is no", "  My answer is no.  "],
    ),
    "detectable_format:number_highlighted_sections": (
        [{"num_highlights": 2}, {"num_highlights": 1}, {"num_highlights": 3}],
        ["*one* and *two*", "**bold** only", "*one*, **two**", "* * empty", "*a\nb*", "** ** blank bold",
         "*x* **y**", "***triple***", "No marks."],
    ),
    "detectable_format:multiple_sections": (
        [{"section_spliter": "Section", "num_sections": 2},
         {"section_spliter": "SECTION", "num_sections": 3},
         {"section_spliter": " Part ", "num_sections": 1}],
        ["Section 1\nA\nSection 2\nB", "SECTION 1 a SECTION 2 b SECTION 3 c",
         "Section one\nSection two", "Part 1: x", "section 1 lower", "Section1 Section2",
         "**Section** 1\nA\n**Section** 2\nB",
         "Intro\nSECTION 1\nSECTION 2"],
    ),
    "detectable_format:json_format": (
        [{}],
        ['{"a": 1}', '```json\n{"a": 1}\n```', '```JSON\n[1, 2]\n```', "```\n\"text\"\n```",
         "Here: {\"a\": 1}", "Here you go:\n{\"a\": 1}", '{"a": 1,}', "42", "NaN", '```Json{"k": true}```',
         '```json```{"x": 0}```'],
    ),
    "detectable_format:title": (
        [{}],
        ["<<My Title>>\nBody.", "<< >>", "<<a\nb>>", "Title: <<Spring>> here", "<<**>>\n*x*", "<<<x>>>",
         "< <nope> >"],
    ),
    "combination:two_responses": (
        [{}],
        ["First answer.\n******\nSecond answer.", "Same.\n******\nSame.",
         "******\nA\n******\nB\n******", "A\n******\n******\nB", "Only one.",
         "A ****** B ****** C", "A*******B"],
    ),
    "combination:repeat_prompt": (
        [{"prompt_to_repeat": "Name three fruits."},
         {"prompt_to_repeat": "  Describe a cloud.  "}],
        ["Name three fruits. Apple, pear, plum.", "name three FRUITS. ok",
         "Sure! Name three fruits.", "Sure!\nName three fruits. Fig.", "Describe a cloud. It is white.",
         "   describe a cloud.\nGrey."],
    ),
    "startend:end_checker": (
        [{"end_phrase": "Any other questions?"}, {"end_phrase": " Goodbye. "}],
        ["Here it is. Any other questions?", "\"Done. Any other questions?\"",
         "any other questions?\n\n", "Goodbye.", "Goodbye!", "Goodbye. Bye.", "Any other questions?\nGoodbye.\n(sent from my phone)",
         "See you. GOODBYE."],
    ),
    "startend:quotation": (
        [{}],
        ['"Quoted answer."', '  "padded"  ', '"', '""', "'single'", '"unclosed',
         'Sure:\n"inner"'],
    ),
    "punctuation:no_comma": (
        [{}],
        ["No commas here.", "One, two.", "Fullwidth ， comma.", "Sure, fine\nno comma"],
    ),
    "change_case:english_lowercase": (
        [{}],
        ["all lower case.", "Not lower.", "123 456", "lower with ÄÖ", "Sure!\nall lower now", "ok\n\nTHANKS"],
    ),
    "change_case:english_capital": (
        [{}],
        ["ALL CAPS HERE.", "Mixed Case", "123", "CAPS 42!", "Sure!\nSHOUTING NOW"],
    ),
}

EDGE_RESPONSES = [
    "", "   ", "\n", "*", "**", "***", "a\nb", '"', '""', "```json\n{}\n```", "<<>>", "P.S.",
    "Sure, here you go:\n* item\nHope it helps!", "- \n- \n", "[x]", "Section 1",
    "***\n***", "first\nsecond\nthird", "A *title* <<T>> [p] P.S. done,", "\t\t*\n",
]
"""Tried with every type and every kwargs of its type."""
