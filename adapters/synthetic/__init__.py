"""Synthetic rounds in the exact TrojAI layout, for when real rounds are out of reach.

One module per concern: `image_drawing` (signs, backgrounds, triggers), `image_rounds` (rounds 3-4),
`text_corpus` (reviews, NER sentences, trigger strings), `text_models` (tokenizers and backbones built
locally), `sentiment_rounds` (rounds 5-6), `ner_rounds` (round 7), `common` (training until a model is
verified, model folders, METADATA.csv) and `specs` (the generators' settings). The generators write the
layout the readers in `adapters` read, and may use them; nothing outside this package and the
`make-round` command imports it.
"""
