"""The stream dashboard: a live map and the pipeline's health in a browser.

One server-side Kafka consumer (:mod:`.feed`) keeps a bounded picture of the system
(:mod:`.state`: ring buffers), and an aiohttp server (:mod:`.server`) pushes what changes to
every open page over a WebSocket. The page (``static/``) is plain HTML, CSS and JavaScript of
this project: no third-party script, nothing fetched at run time but the optional map tiles
of ``HEIMDALL_MAP_TILES_URL``.
"""
