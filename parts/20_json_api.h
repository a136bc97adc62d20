/* PUBLIC API: JSON (owner: data issue) */
