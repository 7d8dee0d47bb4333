"""German names: wert, vorgaenger (list), ableitung, rueckwaerts closure, art (op)."""
import math

STYLE = "German names: wert, vorgaenger list, ableitung, rueckwaerts closure, art"


class Knoten:
    def __init__(self, wert, vorgaenger=(), art=""):
        self.wert = float(wert)
        self.vorgaenger = list(vorgaenger)
        self.art = art
        self.ableitung = 0.0
        self.rueckwaerts = lambda: None

    def __add__(self, anderer):
        erg = Knoten(self.wert + anderer.wert, [self, anderer], "+")

        def rueckwaerts():
            self.ableitung += erg.ableitung
            anderer.ableitung += erg.ableitung
        erg.rueckwaerts = rueckwaerts
        return erg

    def __mul__(self, anderer):
        erg = Knoten(self.wert * anderer.wert, [self, anderer], "*")

        def rueckwaerts():
            self.ableitung += anderer.wert * erg.ableitung
            anderer.ableitung += self.wert * erg.ableitung
        erg.rueckwaerts = rueckwaerts
        return erg

    def exp(self):
        e = math.exp(self.wert)
        erg = Knoten(e, [self], "exp")

        def rueckwaerts():
            self.ableitung += e * erg.ableitung
        erg.rueckwaerts = rueckwaerts
        return erg

    def rueckwaertsdurchlauf(self):
        reihenfolge, besucht = [], set()

        def besuche(k):
            if id(k) not in besucht:
                besucht.add(id(k))
                for v in k.vorgaenger:
                    besuche(v)
                reihenfolge.append(k)
        besuche(self)
        self.ableitung = 1.0
        for k in reversed(reihenfolge):
            k.rueckwaerts()


def backward(out, inputs):
    out.rueckwaertsdurchlauf()


def build():
    a, b, c = Knoten(0.5), Knoten(-1.0), Knoten(2.0)
    out = (a * b + c).exp() * a
    return out, {"a": a, "b": b, "c": c}
