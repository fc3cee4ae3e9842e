from stackray.providers.utils.keyword import BM25Index, bm25_rank, reciprocal_rank_fusion, tokenize


def test_tokenize_lowercases_words():
    assert tokenize("Ray Serve, FAISS-GPU!") == ["ray", "serve", "faiss", "gpu"]


def test_bm25_ranks_the_matching_document_first():
    texts = {
        "a": "the cat sat on the mat",
        "b": "dogs chase cats in the park",
        "c": "ray serve deploys python models",
    }
    ranked = bm25_rank("serve models", texts, k=3)
    assert [doc for doc, _ in ranked] == ["c"]
    assert ranked[0][1] > 0


def test_bm25_index_updates_and_filters():
    index = BM25Index()
    index.add("a", "apples and pears")
    index.add("b", "apples only")
    assert {d for d, _ in index.search("apples", 5)} == {"a", "b"}
    assert [d for d, _ in index.search("apples", 5, allowed={"a"})] == ["a"]
    index.remove("b")
    assert [d for d, _ in index.search("apples", 5)] == ["a"]
    index.add("a", "bananas")  # replaces
    assert index.search("apples", 5) == []
    assert len(index) == 1


def test_rrf_prefers_items_ranked_high_in_both():
    fused = reciprocal_rank_fusion([["x", "y", "z"], ["y", "x", "w"]])
    assert fused[0][0] in {"x", "y"}
    assert {d for d, _ in fused} == {"x", "y", "z", "w"}
    weighted = reciprocal_rank_fusion([["x"], ["y"]], weights=[1.0, 3.0])
    assert weighted[0][0] == "y"
