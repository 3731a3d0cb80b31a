"""The web server: the composition root (`composition`: settings become objects), the routes
(`app`: Twilio's webhooks and the Media Streams socket), the dashboard, the browser phone,
uvicorn in the foreground or the background (`server`) and several worker processes."""
