"""llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) for bench/server_vs_llamacpp.sh,
with weights loaded without llama.cpp's extra buffer types, as the benchmark's other peer loads them
(`llamacpp_peer.without_extra_buffer_types` says why). Takes `python -m llama_cpp.server`'s flags.
"""

from llama_cpp.server.__main__ import main

from llamacpp_peer import without_extra_buffer_types  # bench/, beside this script

if __name__ == "__main__":
    without_extra_buffer_types()
    main()
