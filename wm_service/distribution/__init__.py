"""Distribution of ticket revisions to the BE instances: registry, split, outbox delivery."""
