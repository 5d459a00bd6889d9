"""TrackFlow's HTTP edge (Faust/aiohttp views) and, under tracker/, the browser tracker."""
