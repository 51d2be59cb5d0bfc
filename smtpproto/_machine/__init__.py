"""The protocol machine: the state tables and ClientConnection."""
