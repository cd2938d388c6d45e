"""The API tree: ``API`` classes, endpoint decorators and parameter sources.

Used as ``from utilserve import api`` then ``@api.get``, ``api.Header(...)``.
"""

from ..errors import HTTPError
from .base import API, build_router, delete, get, patch, post, put
from .params import Body, Cookie, File, Header, Query, UploadFile

__all__ = [
    "API",
    "Body",
    "Cookie",
    "File",
    "HTTPError",
    "Header",
    "Query",
    "UploadFile",
    "build_router",
    "delete",
    "get",
    "patch",
    "post",
    "put",
]
