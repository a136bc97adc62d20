/* PUBLIC API: generation and evaluation (owner: generation issue) */
