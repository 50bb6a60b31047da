"""The NOC console: server-rendered pages under /console, every asset shipped in the package."""
