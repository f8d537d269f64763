"""Data contracts: sample encoding, cameras, WebDataset shards, their readers and the
batches training draws from them."""

DOMAINS = ("real", "synthetic")  # the `domain` of a view or shape sample (its meta.json)
DOMAIN_FILTERS = ("any", *DOMAINS)  # what a reader may be asked for
