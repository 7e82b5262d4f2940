"""Chat templates for VLM checkpoints that ship none or need a serving-side one.

Used by vLLM serving (`serve-vlm` passes PaliGemma's) and by the tiny test checkpoints, so that what is served
and what is tested format prompts the same way.
"""

# Chat templates. PaliGemma checkpoints ship none (they are prefix-LM models, not chat
# models), so servers must be given one; vLLM inserts PaliGemma's image tokens itself.
# Templates begin with bos_token because OpenAI-style chat requests are tokenized
# without special tokens (vLLM's default); PaliGemma's processor adds its own bos.
PALIGEMMA_CHAT_TEMPLATE = (
    "{%- for message in messages if message['role'] == 'user' -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] if part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endfor -%}"
)
LLAVA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}USER: {% elif message['role'] == 'assistant' -%}ASSISTANT: {% endif -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] if part['type'] in ('image', 'image_url') -%}<image>\n{% endfor -%}"
    "{%- for part in message['content'] if part['type'] == 'text' -%}{{ part['text'] }}{%- endfor -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{{ eos_token }}{%- endif %} "
    "{% endfor -%}"
    "{%- if add_generation_prompt -%}ASSISTANT:{%- endif -%}"
)
IDEFICS3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{{ message['role'] | capitalize }}:"
    "{%- if message['content'] is string -%}{{ ' ' + message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{ ' ' + part['text'] }}"
    "{%- elif part['type'] in ('image', 'image_url') -%}<image>{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "<end_of_utterance>\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}Assistant:{%- endif -%}"
)
CHAT_TEMPLATES = {
    "paligemma": PALIGEMMA_CHAT_TEMPLATE,
    "llava": LLAVA_CHAT_TEMPLATE,
    "idefics3": IDEFICS3_CHAT_TEMPLATE,
}
