// Server-side template injection payloads (Jinja2, Twig, Freemarker, Velocity gadgets).
// Tuned for mistral-serve: NeMo's stock template.yara flags any {{ ... }} or {% ... %}, which
// blocks every answer that explains a template language; this flags the gadget chains only.
rule ssti_gadget
{
    strings:
        $dunder = /(\{\{|\{%|\$\{|#\{)[^\n]{0,200}(__class__|__mro__|__subclasses__|__globals__|__builtins__|__import__|__base__)/
        $config = /\{\{\s*(config|self|request\.application|lipsum|cycler|joiner|namespace)(\.|\s*\}\})/
        $freemarker = /<#assign[^>]{0,100}freemarker\.template\.utility\.Execute/ nocase
        $velocity = /#set\s*\(\s*\$[a-z]+\s*=\s*[^)]{0,100}getClass\(\)/ nocase
    condition:
        any of them
}
