"""The do-it-yourself baseline of ``bench.embed``: FastAPI calling the model once per request, no batching.

    uvicorn bench.apps.embed_fastapi:app

A ``def`` endpoint, so FastAPI runs each call on its thread pool, as its
docs advise for blocking code.
"""

from fastapi import FastAPI
from pydantic import BaseModel

from bench.apps import embedding

encoder = embedding.load()
app = FastAPI()


class Sentence(BaseModel):
    text: str


@app.post("/embed")
def embed(sentence: Sentence) -> dict:
    return {"embedding": embedding.encode(encoder, [sentence.text])[0].tolist()}
