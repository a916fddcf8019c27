"""Labelling a user's own images: the labels file, batches a person labels (manifest, a labelling page,
Label Studio tasks), and imports of what they labelled, so that nothing typed is lost."""
