"""French names throughout: the value in `valeur`, the inputs in `fils`, the grad in
`derivee`, the rule in `retropropager`, the op as a symbol in `symbole`; and `parents`
holds the nodes that *use* this one (a tree's parents are above it), so the spelling
`parents` is the wrong way round for this class."""
import math

STYLE = "French names: valeur, fils (inputs), parents = consumers, derivee"


class Noeud:
    def __init__(self, valeur, fils=(), symbole=""):
        self.valeur = valeur
        self.derivee = 0.0
        self.fils = list(fils)
        self.parents = []
        self.symbole = symbole
        self.retropropager = lambda: None
        for f in self.fils:
            f.parents.append(self)

    def __add__(self, autre):
        sortie = Noeud(self.valeur + autre.valeur, (self, autre), "+")

        def retropropager():
            self.derivee += sortie.derivee
            autre.derivee += sortie.derivee
        sortie.retropropager = retropropager
        return sortie

    def __mul__(self, autre):
        sortie = Noeud(self.valeur * autre.valeur, (self, autre), "*")

        def retropropager():
            self.derivee += autre.valeur * sortie.derivee
            autre.derivee += self.valeur * sortie.derivee
        sortie.retropropager = retropropager
        return sortie

    def tanh(self):
        t = math.tanh(self.valeur)
        sortie = Noeud(t, (self,), "tanh")

        def retropropager():
            self.derivee += (1 - t * t) * sortie.derivee
        sortie.retropropager = retropropager
        return sortie

    def retropropagation(self):
        ordre, vus, pile = [], set(), [(self, False)]
        while pile:
            noeud, fini = pile.pop()
            if fini:
                ordre.append(noeud)
            elif id(noeud) not in vus:
                vus.add(id(noeud))
                pile.append((noeud, True))
                pile.extend((f, False) for f in noeud.fils)
        for noeud in ordre:
            noeud.derivee = 0.0
        self.derivee = 1.0
        for noeud in reversed(ordre):
            noeud.retropropager()


def backward(out, inputs):
    out.retropropagation()


def build():
    x, y = Noeud(0.5), Noeud(-1.5)
    out = (x * y + x).tanh() * y
    return out, {"x": x, "y": y}
