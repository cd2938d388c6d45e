"""The utilserve API that the mount tests put inside existing native apps."""

from utilserve import API, api


class MountedAPI(API):
    @api.get
    def hello(self, name: str = "world") -> dict:
        return {"message": f"hello {name}"}
