// Markup that executes or exfiltrates when an answer is rendered as HTML or Markdown.
// Tuned for mistral-serve against ops/moderation/data/eval.jsonl: unlike NeMo's stock xss.yara it
// catches javascript: links (the stock $re_md_js has a typo, [\^n] for [^\n]) and lets plain
// Markdown images and links through unless the URL carries a query (the exfiltration channel).
// Every string is recognizable from its first ~40 characters, so windowed stream checks see it
// before any of it is released.
rule script_tag
{
    strings:
        $open = /<script[\s>\/]/ nocase
        $mention = /<script>\s{0,3}(tags?|elements?|blocks?)\b/ nocase  // prose about the tag
    condition:
        for any i in (1..#open) : (not $mention at @open[i])
}

rule javascript_url
{
    strings:
        $md = /\]\(\s*javascript:/ nocase
        $attr = /(href|src|action|formaction|xlink:href)\s*=\s*["']?\s*javascript:/ nocase
        $data = /(href|src)\s*=\s*["']?\s*data:text\/html/ nocase
    condition:
        any of them
}

rule event_handler
{
    strings:
        $on = /<[a-z][a-z0-9]{0,15}\s[^>\n]{0,200}\bon[a-z]{3,20}\s*=/ nocase
    condition:
        $on
}

rule embedded_frame
{
    strings:
        $tag = /<(iframe|object|embed|frameset)[\s>\/]/ nocase
    condition:
        $tag
}

rule markdown_image_exfiltration
{
    strings:
        $img = /!\[[^\]\n]{0,100}\]\(\s*https?:\/\/[^\s)?#]{1,200}[?#][^\s)]{1,400}\)/ nocase
    condition:
        $img
}
