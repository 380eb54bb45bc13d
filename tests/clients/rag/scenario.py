"""Three real RAG clients, each in its own trace, offline (the answer from the local fake model server):

1. LangChain, instrumented by OpenInference: an in-memory vector store with a deterministic bag-of-words
   embedding, a retriever (k=2) and a ChatOpenAI answer from the retrieved context.
2. Chroma (an in-process client), instrumented by OpenLLMetry: a collection with precomputed embeddings and a
   query for the 3 nearest documents.
3. LlamaIndex, instrumented by OpenInference: a vector index over the same documents (same embedding) and a
   retriever for the top 2.

Prints one JSON line: what each client itself returned (ids, contents, distances), for the test to compare
with what the server stored. Env: TRAJSCOPE_OTLP_HTTP (base URL), FAKE_OPENAI_BASE_URL."""

import json
import math
import os

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import ChatOpenAI
from openinference.instrumentation.langchain import LangChainInstrumentor
from openinference.instrumentation.llama_index import LlamaIndexInstrumentor
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.chromadb import ChromaInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

VOCABULARY = ("sky", "blue", "light", "scatter", "ocean", "salt", "cat", "sleep", "paris", "weather")
DOCS = {
    "sky": "Sunlight scatters off the air: blue light scatters most, so the sky looks blue.",
    "ocean": "The ocean is salty because rivers carry salt from rocks into the sea.",
    "cats": "Cats sleep for most of the day.",
    "paris": "The weather in Paris is mild; it is sunny today.",
}
QUESTION = "Why is the sky blue? Does light scatter?"


class BagOfWords(Embeddings):
    """Deterministic, offline: word counts over a small vocabulary, normalised."""

    def _vector(self, text: str) -> list[float]:
        words = text.lower().replace(":", " ").replace(",", " ").replace(".", " ").replace("?", " ").split()
        counts = [float(sum(w.startswith(v) for w in words)) for v in VOCABULARY]
        norm = math.sqrt(sum(c * c for c in counts)) or 1.0
        return [c / norm for c in counts]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


def langchain_rag(tracer) -> dict:
    store = InMemoryVectorStore(BagOfWords())
    store.add_documents([Document(page_content=text, metadata={"source": f"{key}.md"}, id=key)
                         for key, text in DOCS.items()])
    expected = store.similarity_search_with_score(QUESTION, k=2)
    llm = ChatOpenAI(model="gpt-4o-mini", base_url=os.environ["FAKE_OPENAI_BASE_URL"], api_key="sk-test",
                     max_retries=0)
    with tracer.start_as_current_span("rag-langchain"):
        docs = store.as_retriever(search_kwargs={"k": 2}).invoke(QUESTION)
        context = "\n".join(d.page_content for d in docs)
        answer = llm.invoke(f"Answer from the context.\nContext:\n{context}\nQuestion: {QUESTION}").content
    return {"answer": answer, "ids": [d.id for d in docs], "contents": [d.page_content for d in docs],
            "scores": [score for _, score in expected], "metadata": [d.metadata for d in docs]}


def chroma_query(tracer) -> dict:
    import chromadb

    client = chromadb.EphemeralClient()
    embed = BagOfWords()
    collection = client.create_collection("facts", embedding_function=None)
    collection.add(ids=list(DOCS), documents=list(DOCS.values()), embeddings=embed.embed_documents(list(DOCS.values())),
                   metadatas=[{"source": f"{key}.md"} for key in DOCS])
    with tracer.start_as_current_span("rag-chroma"):
        got = collection.query(query_embeddings=[embed.embed_query(QUESTION)], n_results=3,
                               include=["documents", "distances", "metadatas"])
    return {"ids": got["ids"][0], "distances": got["distances"][0], "contents": got["documents"][0]}


def llamaindex_retrieve(tracer) -> dict:
    from llama_index.core import Document as LlamaDocument
    from llama_index.core import Settings, VectorStoreIndex
    from llama_index.core.embeddings import BaseEmbedding

    words = BagOfWords()

    class LlamaBagOfWords(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return words.embed_query(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return words.embed_query(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return words.embed_query(text)

    Settings.embed_model = LlamaBagOfWords()
    index = VectorStoreIndex.from_documents([LlamaDocument(text=text, doc_id=key, metadata={"source": f"{key}.md"})
                                             for key, text in DOCS.items()])
    with tracer.start_as_current_span("rag-llamaindex"):
        nodes = index.as_retriever(similarity_top_k=2).retrieve(QUESTION)
    return {"ids": [n.node.node_id for n in nodes], "docs": [n.node.ref_doc_id for n in nodes],
            "scores": [n.score for n in nodes], "contents": [n.node.get_content() for n in nodes]}


def main() -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "rag")}))
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=os.environ["TRAJSCOPE_OTLP_HTTP"].rstrip("/") + "/v1/traces")))
    trace.set_tracer_provider(provider)
    LangChainInstrumentor().instrument(tracer_provider=provider)
    ChromaInstrumentor().instrument(tracer_provider=provider)
    LlamaIndexInstrumentor().instrument(tracer_provider=provider)
    tracer = trace.get_tracer("rag-scenario")
    out = {"question": QUESTION, "langchain": langchain_rag(tracer), "chroma": chroma_query(tracer),
           "llamaindex": llamaindex_retrieve(tracer)}
    provider.shutdown()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
