"""Storage backends behind small async interfaces: state/ (tables), queue/ (ready tasks), objects/ (data)."""
