"""Real time: the Centrifuge client protocol v2 (JSON) over WebSocket, the hub, brokers and history."""
