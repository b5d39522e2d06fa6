from django import forms


class CheckoutForm(forms.Form):
    email = forms.EmailField(label="Email for the receipt")

    def __init__(self, *args, signed_in: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A guest must leave an email; a signed-in customer is already known.
        self.fields["email"].required = not signed_in
