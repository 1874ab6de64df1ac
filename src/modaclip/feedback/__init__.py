"""Learning from the shop: the search log `modaclip serve` keeps, the simulated log of the embedded default,
and the export that turns a log into training pairs and a held-out judged query set (docs/feedback.md)."""
