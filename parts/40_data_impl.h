/* IMPLEMENTATION: data: readers, schema adapters, chat template, loss weights (owner: data issue) */
